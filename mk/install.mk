# mk/install.mk: `make install` / `make uninstall` (PREFIX, default /usr/local; DESTDIR), the man
# pages (man/NAME.SECTION.md -> $(BUILD)/man/NAME.SECTION with go-md2man) and `make deb`.
#   make install                            programs, man pages, units, data under /usr/local
#   make install PREFIX=/usr DESTDIR=/tmp/x  the very file list of the Debian package
#   make deb                                 build/deb/lpq_VERSION_ARCH.deb, lpq-data_VERSION_all.deb (debian/)
#   make check-deb                           build, lintian, install, check, purge (root; scripts/deb_test.sh)
# What goes where:
#   $(BINDIR)           lpq, lpqctl, lpq-coordinator, lpq-worker
#   $(MANDIR)           lpq(1), lpqctl(1), lpq-coordinator(8), lpq-worker(8), gzipped as Debian wants
#   $(DATADIR)          models/ (the bundled models and calibration data), schema/
#   $(DOCDIR)           README.md, docs/, deploy/ (the units there with the installed paths)
#   $(SYSTEMDUNITDIR)   lpq-coordinator.service, lpq-worker@.service: where systemd looks under
#                       PREFIX (/usr/local/lib/systemd/system; for /usr the systemd package's)
#   $(SYSUSERSDIR)      lpq.conf: the daemons' system user _lpq, for systemd-sysusers
#   $(SYSCONFDIR)/lpq   coordinator.env, worker.env (never overwritten), workers.d/
# The units in deploy/systemd name the default PREFIX's paths; install rewrites them for PREFIX.
# The LP format library (lp/) is not installed for other C code: README.md ("Installing") says why.
PREFIX         ?= /usr/local
BINDIR         ?= $(PREFIX)/bin
DATADIR        ?= $(PREFIX)/share/lpq
DOCDIR         ?= $(PREFIX)/share/doc/lpq
MANDIR         ?= $(PREFIX)/share/man
SYSCONFDIR     ?= /etc
SYSTEMD_PC      = $(shell pkg-config --variable=$(1) systemd 2>/dev/null)
SYSTEMDUNITDIR ?= $(if $(filter /usr,$(PREFIX)),$(or $(call SYSTEMD_PC,systemdsystemunitdir),/lib/systemd/system),$(PREFIX)/lib/systemd/system)
SYSUSERSDIR    ?= $(if $(filter /usr,$(PREFIX)),$(or $(call SYSTEMD_PC,sysusersdir),/usr/lib/sysusers.d),$(PREFIX)/lib/sysusers.d)
INSTALL        ?= install
GO_MD2MAN      ?= go-md2man

MAN_SRC   := $(wildcard man/*.md)
MAN_PAGES := $(patsubst man/%.md,$(BUILD)/man/%,$(MAN_SRC))
PROGRAM_NAMES = $(foreach p,$(PROGRAMS),$(word 1,$(subst :, ,$(p))))
UNITS     := lpq-coordinator.service lpq-worker@.service
ENV_FILES := coordinator.env worker.env
DEPLOY_DOCS := $(filter-out deploy/k8s/keys/%,$(wildcard deploy/README.md deploy/compose.yaml \
               deploy/docker/* deploy/k8s/*.yaml deploy/slurm/* deploy/systemd/*))
MODEL_FILES := $(wildcard models/README.md models/*.json models/*.onnx models/*.npy)
SCHEMA_FILES := $(wildcard schema/README.md schema/*.json schema/*.sql)
DOC_FILES := README.md $(wildcard docs/*.md)
# Paths in the units and deploy files that follow the installation.
INSTALL_PATHS = sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/local/share/doc/lpq/|$(DOCDIR)/|g' \
                    -e 's|/etc/lpq/|$(SYSCONFDIR)/lpq/|g'

.PHONY: programs man install uninstall deb check-deb
man: $(MAN_PAGES)

$(BUILD)/man/%: man/%.md
	@mkdir -p $(@D)
	$(GO_MD2MAN) -in $< -out $@

# One file: install_file MODE SRC DEST (folders made as needed).
install_file = $(INSTALL) -D -m $(1) $(2) $(DESTDIR)$(3)

install: programs man
	@set -e; \
	for p in $(PROGRAM_NAMES); do $(call install_file,0755,$(BUILD)/bin/$$p,$(BINDIR)/$$p); done; \
	for m in $(MAN_PAGES); do n=$$(basename $$m); s=$${n##*.}; \
	  $(INSTALL) -d $(DESTDIR)$(MANDIR)/man$$s; gzip -9nc $$m > $(DESTDIR)$(MANDIR)/man$$s/$$n.gz; \
	  chmod 0644 $(DESTDIR)$(MANDIR)/man$$s/$$n.gz; done; \
	for f in $(MODEL_FILES); do $(call install_file,0644,$$f,$(DATADIR)/$$f); done; \
	for f in $(SCHEMA_FILES) $(wildcard schema/api/*.json); do $(call install_file,0644,$$f,$(DATADIR)/$$f); done; \
	for f in $(DOC_FILES); do $(call install_file,0644,$$f,$(DOCDIR)/$$(basename $$f)); done; \
	for f in $(wildcard docs/sensitivity/*); do $(call install_file,0644,$$f,$(DOCDIR)/$${f#docs/}); done; \
	for f in $(DEPLOY_DOCS); do $(INSTALL) -d $(DESTDIR)$(DOCDIR)/$$(dirname $$f); \
	  $(INSTALL_PATHS) $$f > $(DESTDIR)$(DOCDIR)/$$f; chmod 0644 $(DESTDIR)$(DOCDIR)/$$f; done; \
	$(INSTALL) -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSCONFDIR)/lpq/workers.d; \
	for u in $(UNITS); do $(INSTALL_PATHS) deploy/systemd/$$u > $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; \
	  chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; done; \
	$(call install_file,0644,deploy/systemd/lpq.sysusers,$(SYSUSERSDIR)/lpq.conf); \
	for e in $(ENV_FILES); do [ -e $(DESTDIR)$(SYSCONFDIR)/lpq/$$e ] || \
	  $(call install_file,0644,deploy/systemd/$$e,$(SYSCONFDIR)/lpq/$$e); done
	@[ -n "$(DESTDIR)" ] || echo "install: done; the daemons run as the system user _lpq:" \
	  "systemd-sysusers (or adduser --system --group --home /var/lib/lpq --no-create-home _lpq)," \
	  "then systemctl daemon-reload"

# Removes what install put there; the env files only while they are as installed (an edited
# one is kept, with /etc/lpq).
uninstall:
	@set -e; \
	for p in $(PROGRAM_NAMES); do rm -f $(DESTDIR)$(BINDIR)/$$p; done; \
	for m in $(MAN_SRC); do n=$$(basename $$m .md); rm -f $(DESTDIR)$(MANDIR)/man$${n##*.}/$$n.gz; done; \
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR); \
	for u in $(UNITS); do rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/$$u; done; \
	rm -f $(DESTDIR)$(SYSUSERSDIR)/lpq.conf; \
	for e in $(ENV_FILES); do if cmp -s deploy/systemd/$$e $(DESTDIR)$(SYSCONFDIR)/lpq/$$e; then \
	  rm -f $(DESTDIR)$(SYSCONFDIR)/lpq/$$e; fi; done; \
	rmdir $(DESTDIR)$(SYSCONFDIR)/lpq/workers.d $(DESTDIR)$(SYSCONFDIR)/lpq 2>/dev/null || true; \
	if [ -n "$(DESTDIR)" ]; then find $(DESTDIR) -depth -mindepth 1 -type d -empty -delete; fi

# The package is built from a copy of the tree in $(BUILD)/deb/src (dpkg-buildpackage writes
# into the parent folder and its clean step runs `make clean`, which must not touch build/):
# without .git, build folders, var/ and the Kubernetes keys.
DEB_VERSION = $(shell dpkg-parsechangelog -l debian/changelog -S Version)
deb: deps
	rm -rf $(BUILD)/deb
	mkdir -p $(BUILD)/deb/src
	tar -cf - --anchored --exclude=./.git --exclude=./build --exclude='./build-*' --exclude=./var \
	    --exclude='./deploy/k8s/keys/*' --exclude=./$(BUILD) . | tar -C $(BUILD)/deb/src -xf -
	cd $(BUILD)/deb/src && dpkg-buildpackage -b -us -uc -Jauto
	rm -rf $(BUILD)/deb/src
	@ls $(BUILD)/deb/*.deb

check-deb: deb
	@scripts/deb_test.sh $(BUILD) $(BUILD)/deb/lpq_$(DEB_VERSION)_$$(dpkg --print-architecture).deb \
	    $(BUILD)/deb/lpq-data_$(DEB_VERSION)_all.deb
