# mk/deploy_tests.mk: the checks of deploy/ (tests/test_deploy*.c) read YAML with libyaml (libyaml-dev).
DEPLOY_YAML_LIBS := $(shell pkg-config --libs yaml-0.1 2>/dev/null || echo -lyaml)
$(BUILD)/tests/test_deploy $(BUILD)/tests/test_deploy_hosts: TEST_LDLIBS += $(DEPLOY_YAML_LIBS)
