// kquants_test.cc — filled in by the kernel work for issue 3.
#include <gtest/gtest.h>
