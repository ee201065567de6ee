# mk/store_schema.mk: the SQLite schema migrations (schema/store_vN.sql, N = 1, 2, ...) compiled
# into libcoordinator_store.a as C strings, so the coordinator needs no data files at run time.
# lpq__store_migrations[N - 1] is migration N; the numbers must run 1..N without a gap.
STORE_MIGRATIONS := $(wildcard schema/store_v*.sql)
coordinator_store_GEN_SRC += $(BUILD)/gen/coordinator/store_schema.c
$(BUILD)/gen/coordinator/store_schema.c: $(STORE_MIGRATIONS) mk/store_schema.mk mk/embed.mk
	@mkdir -p $(@D)
	@{ echo '/* Generated from schema/store_v*.sql by mk/store_schema.mk. */'; \
	   echo '#include <stddef.h>'; \
	   echo 'const char *const lpq__store_migrations[] = {'; \
	   n=0; for f in $$(ls schema/store_v*.sql | sort -V); do \
	     n=$$((n + 1)); \
	     [ "$$f" = "schema/store_v$$n.sql" ] || { echo "mk/store_schema.mk: expected schema/store_v$$n.sql, found $$f" >&2; exit 1; }; \
	     echo "  /* $$f */"; \
	     $(call embed_lines,$$f); \
	     echo '  ,'; \
	   done; \
	   echo '};'; \
	   echo "const size_t lpq__store_migration_count = $$n;"; } > $@.tmp && mv $@.tmp $@
