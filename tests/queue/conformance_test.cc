// The queue conformance suite (conformance_suite.h) over every backend in
// ipc/.
#include "conformance_suite.h"

namespace shmkit {
namespace {

INSTANTIATE_TYPED_TEST_SUITE_P(All, QueueConformance,
                               ::shmkit::testing::AllBackends,
                               ::shmkit::testing::BackendNames);

}  // namespace
}  // namespace shmkit
