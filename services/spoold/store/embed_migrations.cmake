# Writes a C++ source holding every migrations/NNNN_*.sql file, so spoold
# carries its schema with it. Run with -DMIGRATIONS_DIR=... -DOUTPUT=...
file(GLOB files "${MIGRATIONS_DIR}/[0-9][0-9][0-9][0-9]_*.sql")
list(SORT files)
set(body "")
foreach(f IN LISTS files)
  get_filename_component(name "${f}" NAME)
  string(SUBSTRING "${name}" 0 4 version)
  math(EXPR version "${version}")
  file(READ "${f}" sql)
  string(APPEND body "      {${version}, \"${name}\", R\"spool_sql(${sql})spool_sql\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp"
"// Generated from migrations/ by embed_migrations.cmake. Do not edit.
#include \"store/migrator.h\"

namespace spool::store {

const std::vector<Migration>& EmbeddedMigrations() {
  static const auto* migrations = new std::vector<Migration>{
${body}  };
  return *migrations;
}

}  // namespace spool::store
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
