# mk/accel_arch.mk: accel_sim's built-in architecture (accel_sim/arch/default.json) as the C
# string accel_default_arch_json in libaccel_sim.a.
accel_sim_GEN_SRC += $(BUILD)/gen/accel_sim/arch_default.c
$(BUILD)/gen/accel_sim/arch_default.c: accel_sim/arch/default.json mk/accel_arch.mk mk/embed.mk
	@mkdir -p $(@D)
	@{ echo '/* Generated from accel_sim/arch/default.json by mk/accel_arch.mk. */'; \
	   echo 'const char accel_default_arch_json[] ='; \
	   $(call embed_lines,$<); \
	   echo '  ;'; } > $@.tmp && mv $@.tmp $@
