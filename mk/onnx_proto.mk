# mk/onnx_proto.mk: the protobuf-c code for ONNX, generated at build time from the onnx.proto that
# Debian's libonnx-dev ships, into $(BUILD)/gen/onnx/ (on the include path as "onnx/onnx.pb-c.h").
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
ONNX_GEN_C := $(BUILD)/gen/onnx/onnx.pb-c.c
ONNX_GEN_H := $(BUILD)/gen/onnx/onnx.pb-c.h

engine_GEN_SRC += $(ONNX_GEN_C)

# protoc-c names its outputs after the proto's path below --proto_path, so the proto is copied
# under onnx/ first: the generated .c then includes "onnx/onnx.pb-c.h".
$(ONNX_GEN_H): $(ONNX_PROTO)
	@mkdir -p $(BUILD)/gen/onnx
	cp $(ONNX_PROTO) $(BUILD)/gen/onnx/onnx.proto
	protoc-c --proto_path=$(BUILD)/gen --c_out=$(BUILD)/gen $(BUILD)/gen/onnx/onnx.proto
$(ONNX_GEN_C): $(ONNX_GEN_H)

# Everything that may include the generated header waits for it (order-only: a clean clone
# has no dependency files yet to tell make so).
$(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard engine/*.c tests/*.c tools/lpq/*.c)) \
    $(BUILD)/obj/$(ONNX_GEN_C:.c=.o): | $(ONNX_GEN_H)
