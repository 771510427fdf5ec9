// The app's look: Dear ImGui's dark style, softened, and the colours the views share.
#pragma once
#include <imgui.h>

#include <cstdint>
#include <string>

namespace nibble::chat {

void apply_theme();

namespace color {
inline const ImVec4 kAccent{0.40f, 0.62f, 1.00f, 1.0f};
inline const ImVec4 kMuted{0.56f, 0.59f, 0.66f, 1.0f};
inline const ImVec4 kError{1.00f, 0.45f, 0.40f, 1.0f};
inline const ImVec4 kGood{0.45f, 0.82f, 0.55f, 1.0f};
inline const ImU32 kUserBubble = IM_COL32(44, 62, 96, 255);
inline const ImU32 kAssistantBubble = IM_COL32(36, 39, 48, 255);
inline const ImU32 kCodeBackground = IM_COL32(18, 20, 26, 255);
// The memory gauge and the per-layer chart.
inline const ImU32 kWeights = IM_COL32(102, 158, 255, 255);
inline const ImU32 kKvCache = IM_COL32(255, 178, 72, 255);
inline const ImU32 kOther = IM_COL32(170, 120, 230, 255);
inline const ImU32 kFree = IM_COL32(52, 56, 68, 255);
inline const ImU32 kAttention = IM_COL32(102, 158, 255, 255);
inline const ImU32 kMlp = IM_COL32(120, 210, 140, 255);
}  // namespace color

// Bytes as "1.23 GiB" / "456.7 MiB".
std::string format_bytes(uint64_t bytes);

}  // namespace nibble::chat
