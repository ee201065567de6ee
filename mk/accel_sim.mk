# accel_sim: the built-in architecture file compiled into libaccel_sim.a as a C string, so the
# tools need no data files at run time. Each JSON line becomes one escaped string literal.
accel_sim_GEN_SRC += $(BUILD)/gen/accel_sim/arch_default.c
$(BUILD)/gen/accel_sim/arch_default.c: accel_sim/arch/default.json mk/accel_sim.mk
	@mkdir -p $(@D)
	@{ echo '/* Generated from accel_sim/arch/default.json by mk/accel_sim.mk. */'; \
	   echo 'const char accel_default_arch_json[] ='; \
	   sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/  "/' -e 's/$$/\\n"/' $<; \
	   echo '  ;'; } > $@
