// The shmkit PHP extension's module entry: registers Shmkit\Table,
// Shmkit\Atomic, Shmkit\Queue and the Shmkit\Exception family.
#include "shmkit_php.h"

extern "C" {
#include "ext/standard/info.h"
}

namespace {

PHP_MINIT_FUNCTION(shmkit) {
  (void)type;
  (void)module_number;
  shmkit::php::RegisterErrors();
  shmkit::php::RegisterTable();
  shmkit::php::RegisterAtomic();
  shmkit::php::RegisterQueue();
  return SUCCESS;
}

PHP_MSHUTDOWN_FUNCTION(shmkit) {
  (void)type;
  (void)module_number;
  // Detaches the named objects this process kept open across requests.
  shmkit::php::ReleaseNamedTables();
  shmkit::php::ReleaseNamedAtomics();
  return SUCCESS;
}

PHP_MINFO_FUNCTION(shmkit) {
  (void)zend_module;
  php_info_print_table_start();
  php_info_print_table_row(2, "shmkit support", "enabled");
  php_info_print_table_row(2, "version", shmkit::php::kVersion);
  php_info_print_table_end();
}

const zend_module_dep shmkit_deps[] = {ZEND_MOD_REQUIRED("spl")
                                           ZEND_MOD_END};

}  // namespace

extern "C" {

zend_module_entry shmkit_module_entry = {
    STANDARD_MODULE_HEADER_EX,
    nullptr,
    shmkit_deps,
    "shmkit",
    nullptr,  // functions: everything is in classes
    PHP_MINIT(shmkit),
    PHP_MSHUTDOWN(shmkit),
    nullptr,  // RINIT
    nullptr,  // RSHUTDOWN
    PHP_MINFO(shmkit),
    shmkit::php::kVersion,
    STANDARD_MODULE_PROPERTIES};

ZEND_GET_MODULE(shmkit)

}  // extern "C"
