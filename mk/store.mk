# store: the SQLite schema migrations (schema/store_vN.sql, N = 1, 2, ...) compiled into
# libcoordinator.a as C strings, so the coordinator needs no data files at run time.
# lpq_store_migrations[N - 1] is migration N; the numbers must run 1..N without a gap.
STORE_MIGRATIONS := $(wildcard schema/store_v*.sql)
coordinator_GEN_SRC += $(BUILD)/gen/coordinator/store_schema.c
$(BUILD)/gen/coordinator/store_schema.c: $(STORE_MIGRATIONS) mk/store.mk
	@mkdir -p $(@D)
	@{ echo '/* Generated from schema/store_v*.sql by mk/store.mk. */'; \
	   echo '#include <stddef.h>'; \
	   echo 'const char *const lpq_store_migrations[] = {'; \
	   n=0; for f in $$(ls schema/store_v*.sql | sort -V); do \
	     n=$$((n + 1)); \
	     [ "$$f" = "schema/store_v$$n.sql" ] || { echo "mk/store.mk: expected schema/store_v$$n.sql, found $$f" >&2; exit 1; }; \
	     echo "  /* $$f */"; \
	     sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/  "/' -e 's/$$/\\n"/' $$f; \
	     echo '  ,'; \
	   done; \
	   echo '};'; \
	   echo "const size_t lpq_store_migration_count = $$n;"; } > $@.tmp && mv $@.tmp $@
