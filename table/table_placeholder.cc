// Replaced by the table implementation.
namespace shmkit::internal {
int table_placeholder = 0;
}
