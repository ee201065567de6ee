# mk/dashboard.mk: the dashboard's files (coordinator/http/www/: the page, its script and style,
# and uPlot from npm, installed there by make deps) compiled into libcoordinator_http.a as the
# table lpq__http_assets, so lpq-coordinator --http serves them with nothing to install and no
# network at run time. libh2o (libh2o-dev, built on libuv) serves them.
DASHBOARD_WWW   := coordinator/http/www
DASHBOARD_UPLOT := $(DASHBOARD_WWW)/node_modules/uplot/dist
# path:content type:file, one per asset (all text, sent as UTF-8)
DASHBOARD_ASSETS := \
  /:text/html:$(DASHBOARD_WWW)/index.html \
  /assets/app.js:text/javascript:$(DASHBOARD_WWW)/app.js \
  /assets/app.css:text/css:$(DASHBOARD_WWW)/app.css \
  /assets/uPlot.iife.min.js:text/javascript:$(DASHBOARD_UPLOT)/uPlot.iife.min.js \
  /assets/uPlot.min.css:text/css:$(DASHBOARD_UPLOT)/uPlot.min.css
DASHBOARD_FILES := $(foreach a,$(DASHBOARD_ASSETS),$(word 3,$(subst :, ,$(a))))
coordinator_http_GEN_SRC += $(BUILD)/gen/coordinator/http_assets.c

# A C string of a text file: mk/embed.mk's lines, with "??" broken up (no trigraph warnings
# from minified scripts).
embed_text = $(call embed_lines,$(1)) | sed -e ':a' -e 's/??/?\\?/' -e 'ta'

$(BUILD)/gen/coordinator/http_assets.c: $(DASHBOARD_FILES) mk/dashboard.mk mk/embed.mk
	@mkdir -p $(@D)
	@{ echo '/* Generated from coordinator/http/www/ and uPlot by mk/dashboard.mk. */'; \
	   echo '#include "coordinator/http/http_internal.h"'; \
	   i=0; for a in $(DASHBOARD_ASSETS); do f=$${a##*:}; \
	     echo "static const char asset_$$i[] ="; $(call embed_text,$$f); echo '  ;'; \
	     i=$$((i + 1)); done; \
	   echo 'const lpq__http_asset_t lpq__http_assets[] = {'; \
	   i=0; for a in $(DASHBOARD_ASSETS); do p=$${a%%:*}; rest=$${a#*:}; t=$${rest%%:*}; \
	     echo "  {\"$$p\", \"$$t; charset=utf-8\", asset_$$i, sizeof asset_$$i - 1},"; i=$$((i + 1)); done; \
	   echo '};'; \
	   echo 'const size_t lpq__http_asset_count = sizeof lpq__http_assets / sizeof lpq__http_assets[0];'; \
	 } > $@.tmp && mv $@.tmp $@

$(DASHBOARD_UPLOT)/%:
	@echo "mk/dashboard.mk: $@ is missing: run make deps (npm install in $(DASHBOARD_WWW))" >&2; exit 1
