#include "app/chat/theme.h"

#include <cstdio>

namespace nibble::chat {

void apply_theme() {
  ImGui::StyleColorsDark();
  ImGuiStyle& s = ImGui::GetStyle();
  s.WindowRounding = 0;
  s.ChildRounding = 6;
  s.FrameRounding = 5;
  s.PopupRounding = 6;
  s.GrabRounding = 4;
  s.ScrollbarRounding = 6;
  s.FramePadding = ImVec2(8, 5);
  s.ItemSpacing = ImVec2(8, 7);
  s.WindowPadding = ImVec2(12, 12);
  s.WindowBorderSize = 0;
  s.ChildBorderSize = 1;
  ImVec4* c = s.Colors;
  c[ImGuiCol_WindowBg] = ImVec4(0.086f, 0.094f, 0.118f, 1);
  c[ImGuiCol_ChildBg] = ImVec4(0.110f, 0.118f, 0.145f, 1);
  c[ImGuiCol_PopupBg] = ImVec4(0.120f, 0.130f, 0.160f, 1);
  c[ImGuiCol_Border] = ImVec4(0.20f, 0.22f, 0.27f, 1);
  c[ImGuiCol_FrameBg] = ImVec4(0.16f, 0.17f, 0.21f, 1);
  c[ImGuiCol_FrameBgHovered] = ImVec4(0.20f, 0.22f, 0.27f, 1);
  c[ImGuiCol_FrameBgActive] = ImVec4(0.23f, 0.25f, 0.31f, 1);
  c[ImGuiCol_Button] = ImVec4(0.20f, 0.30f, 0.48f, 1);
  c[ImGuiCol_ButtonHovered] = ImVec4(0.26f, 0.40f, 0.64f, 1);
  c[ImGuiCol_ButtonActive] = ImVec4(0.30f, 0.46f, 0.74f, 1);
  c[ImGuiCol_Header] = ImVec4(0.18f, 0.20f, 0.26f, 1);
  c[ImGuiCol_HeaderHovered] = ImVec4(0.22f, 0.26f, 0.34f, 1);
  c[ImGuiCol_HeaderActive] = ImVec4(0.26f, 0.30f, 0.40f, 1);
  c[ImGuiCol_TitleBgActive] = ImVec4(0.14f, 0.16f, 0.21f, 1);
  c[ImGuiCol_SliderGrab] = ImVec4(0.40f, 0.62f, 1.00f, 1);
  c[ImGuiCol_CheckMark] = ImVec4(0.40f, 0.62f, 1.00f, 1);
  c[ImGuiCol_PlotHistogram] = ImVec4(0.40f, 0.62f, 1.00f, 1);
  c[ImGuiCol_PlotLines] = ImVec4(0.47f, 0.82f, 0.55f, 1);
  c[ImGuiCol_Separator] = ImVec4(0.20f, 0.22f, 0.27f, 1);
}

std::string format_bytes(uint64_t bytes) {
  char buffer[32];
  const double mib = double(bytes) / (1024.0 * 1024.0);
  if (mib >= 1024.0)
    std::snprintf(buffer, sizeof buffer, "%.2f GiB", mib / 1024.0);
  else if (mib >= 1.0)
    std::snprintf(buffer, sizeof buffer, "%.1f MiB", mib);
  else
    std::snprintf(buffer, sizeof buffer, "%.0f KiB", double(bytes) / 1024.0);
  return buffer;
}

}  // namespace nibble::chat
