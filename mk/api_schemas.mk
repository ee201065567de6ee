# mk/api_schemas.mk: the JSON schemas of the API methods (schema/api/METHOD.json) compiled into
# libcoordinator_api.a, so the daemon validates params against the very files users read.
API_SCHEMAS := $(sort $(wildcard schema/api/*.json))
coordinator_api_GEN_SRC += $(BUILD)/gen/coordinator/api_schemas.c
$(BUILD)/gen/coordinator/api_schemas.c: $(API_SCHEMAS) mk/api_schemas.mk mk/embed.mk
	@mkdir -p $(@D)
	@{ echo '/* Generated from the files schema/api/METHOD.json by mk/api_schemas.mk. */'; \
	   echo '#include <stddef.h>'; \
	   echo 'const char *const lpq__api_schema_texts[][2] = {'; \
	   for f in $(API_SCHEMAS); do \
	     n=$$(basename $$f .json); echo "  {\"$$n\","; \
	     $(call embed_lines,$$f); echo '  },'; \
	   done; \
	   echo '};'; \
	   echo 'const size_t lpq__api_schema_count = sizeof lpq__api_schema_texts / sizeof lpq__api_schema_texts[0];'; \
	 } > $@.tmp && mv $@.tmp $@
