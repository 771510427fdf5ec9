// VkResult checking: every failure becomes a nibble::Error naming the call, so a lost device or
// an exhausted heap ends the run with a message instead of a crash or a hang.
#pragma once
#include <volk.h>

#include <string>

namespace nibble::vk {

std::string result_name(VkResult r);
void check(VkResult r, const char* what);

}  // namespace nibble::vk
