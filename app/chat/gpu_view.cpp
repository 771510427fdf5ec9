#include "app/chat/gpu_view.h"

#include <imgui.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "app/chat/load_estimate.h"
#include "app/chat/theme.h"

namespace nibble::chat {

namespace {

void section(const char* title, const Fonts& fonts) {
  ImGui::Spacing();
  ImGui::PushFont(fonts.large);
  ImGui::TextUnformatted(title);
  ImGui::PopFont();
}

void legend(ImU32 colour, const char* text) {
  const ImVec2 p = ImGui::GetCursorScreenPos();
  const float h = ImGui::GetTextLineHeight();
  ImGui::GetWindowDrawList()->AddRectFilled(ImVec2(p.x, p.y + h * 0.2f),
                                            ImVec2(p.x + h * 0.6f, p.y + h * 0.8f), colour, 2);
  ImGui::Dummy(ImVec2(h * 0.6f, h));
  ImGui::SameLine();
  ImGui::TextUnformatted(text);
}

}  // namespace

void GpuView::draw(const Session& session, const Fonts& fonts) {
  const WorkerStatus& status = session.status();
  ImGui::PushTextWrapPos(0);  // the column may be narrow: wrap every line
  section("Device", fonts);
  if (status.model) {
    ImGui::Text("%s", status.model->device.c_str());
    ImGui::TextColored(color::kMuted, "%s backend; window drawn on %s",
                       status.model->backend.c_str(), window_device_.c_str());
  } else {
    ImGui::Text("%s", window_device_.c_str());
    ImGui::TextColored(color::kMuted, "no model loaded");
  }

  section("Memory", fonts);
  draw_memory(session);
  section("Time per layer", fonts);
  draw_layers(session);
  section("Speed", fonts);
  draw_speed(session);
  ImGui::PopTextWrapPos();
}

void GpuView::draw_memory(const Session& session) {
  const WorkerStatus& status = session.status();
  const MemoryInfo& m = status.memory;
  const bool cpu = status.model && status.model->backend == "cpu";
  uint64_t budget = m.device_budget;
  if (budget == 0) budget = cpu ? host_memory_bytes() : window_device_memory_;
  // "The rest": what the driver says the process uses beyond our own tally, plus activations.
  const uint64_t used = std::max(m.device_used, m.total());
  const uint64_t rest = used - m.weights - m.kv_cache;
  const uint64_t scale = std::max(budget, used);

  const float width = ImGui::GetContentRegionAvail().x, height = 22;
  const ImVec2 p = ImGui::GetCursorScreenPos();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddRectFilled(p, ImVec2(p.x + width, p.y + height), color::kFree, 4);
  float x = p.x;
  for (auto [bytes, colour] :
       {std::pair{m.weights, color::kWeights}, std::pair{m.kv_cache, color::kKvCache},
        std::pair{rest, color::kOther}}) {
    if (scale == 0 || bytes == 0) continue;
    const float w = std::max(1.0f, width * float(double(bytes) / double(scale)));
    dl->AddRectFilled(ImVec2(x, p.y), ImVec2(x + w, p.y + height), colour);
    x += w;
  }
  ImGui::Dummy(ImVec2(width, height));
  ImGui::Text("%s of %s%s", format_bytes(used).c_str(), format_bytes(budget).c_str(),
              m.device_budget ? "" : (cpu ? " (host memory)" : " (device heap)"));
  // Two legend entries a row when the column is wide enough.
  if (ImGui::BeginTable("legend", width > 300 ? 2 : 1)) {
    const std::pair<ImU32, std::string> entries[] = {
        {color::kWeights, "model " + format_bytes(m.weights)},
        {color::kKvCache, "KV cache " + format_bytes(m.kv_cache)},
        {color::kOther, "rest " + format_bytes(rest)},
        {color::kFree, "free " + format_bytes(budget > used ? budget - used : 0)}};
    for (const auto& [colour, text] : entries) {
      ImGui::TableNextColumn();
      legend(colour, text.c_str());
    }
    ImGui::EndTable();
  }
  // How full the context is: the KV cache is allocated whole, so the gauge cannot show it.
  if (status.model) {
    const int context = status.model->context;
    char overlay[64];
    std::snprintf(overlay, sizeof overlay, "context %d / %d tokens", status.context_used, context);
    ImGui::PushStyleColor(ImGuiCol_PlotHistogram, ImGui::ColorConvertU32ToFloat4(color::kKvCache));
    ImGui::ProgressBar(context ? float(status.context_used) / float(context) : 0, ImVec2(-1, 0),
                       overlay);
    ImGui::PopStyleColor();
  }
}

void GpuView::draw_layers(const Session& session) {
  std::map<int, std::pair<double, double>> layers;  // layer -> (attention ms, mlp ms)
  for (const LayerTime& t : session.status().step_times)
    (t.phase == Phase::Attention ? layers[t.layer].first : layers[t.layer].second) += t.ms;
  if (layers.empty()) {
    ImGui::TextColored(color::kMuted,
                       session.model_ready() ? "Send a message to measure." : "No model loaded.");
    return;
  }
  double peak = 0, attention = 0, mlp = 0;
  for (const auto& [layer, t] : layers) {
    peak = std::max({peak, t.first, t.second});
    attention += t.first;
    mlp += t.second;
  }
  // One pair of bars per layer, attention beside MLP, scaled to the slowest.
  const float width = ImGui::GetContentRegionAvail().x, height = 120;
  const ImVec2 p = ImGui::GetCursorScreenPos();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddRectFilled(p, ImVec2(p.x + width, p.y + height), IM_COL32(20, 22, 28, 255), 4);
  const float slot = width / float(layers.size()), bar = std::max(1.0f, slot * 0.4f);
  int hovered = -1;
  int i = 0;
  for (const auto& [layer, t] : layers) {
    const float x = p.x + slot * float(i) + slot * 0.1f;
    const float ha = float(t.first / peak) * (height - 6),
                hm = float(t.second / peak) * (height - 6);
    dl->AddRectFilled(ImVec2(x, p.y + height - ha), ImVec2(x + bar, p.y + height),
                      color::kAttention);
    dl->AddRectFilled(ImVec2(x + bar, p.y + height - hm), ImVec2(x + 2 * bar, p.y + height),
                      color::kMlp);
    if (ImGui::IsMouseHoveringRect(ImVec2(p.x + slot * float(i), p.y),
                                   ImVec2(p.x + slot * float(i + 1), p.y + height)))
      hovered = layer;
    ++i;
  }
  ImGui::Dummy(ImVec2(width, height));
  if (hovered >= 0)
    ImGui::SetTooltip("layer %d: attention %.3f ms, MLP %.3f ms", hovered, layers[hovered].first,
                      layers[hovered].second);
  legend(color::kAttention, "attention");
  ImGui::SameLine();
  legend(color::kMlp, "MLP");
  ImGui::SameLine();
  ImGui::TextColored(color::kMuted, " %zu layers", layers.size());
  ImGui::Text("last step %.2f ms", attention + mlp);
  ImGui::TextColored(color::kMuted, "attention %.2f ms, MLP %.2f ms", attention, mlp);
}

void GpuView::draw_speed(const Session& session) {
  const WorkerStatus& status = session.status();
  const std::vector<float> history(session.speed_history.begin(), session.speed_history.end());
  float peak = 1;
  for (float v : history) peak = std::max(peak, v);
  char overlay[64];
  std::snprintf(overlay, sizeof overlay, "%.1f tok/s", history.empty() ? 0.0f : history.back());
  // Bars rather than a line: a single sample (one quick answer) still shows.
  ImGui::PushStyleColor(ImGuiCol_PlotHistogram, ImGui::ColorConvertU32ToFloat4(color::kMlp));
  ImGui::PlotHistogram("##speed", history.data(), int(history.size()), 0,
                       history.empty() ? "no answers yet" : overlay, 0.0f, peak * 1.5f,
                       ImVec2(ImGui::GetContentRegionAvail().x, 80));
  ImGui::PopStyleColor();
  if (session.generating()) {
    ImGui::Text("answering: %d tokens, %.1f tok/s", status.answer_tokens, status.answer_tps);
    return;
  }
  // The last answer's figures.
  const auto& messages = session.conversation.messages;
  for (auto it = messages.rbegin(); it != messages.rend(); ++it)
    if (it->stats) {
      ImGui::Text("last answer: %.1f tok/s generation", it->stats->generation_tps);
      ImGui::Text("prompt: %d tokens at %.1f tok/s", it->stats->prompt_tokens,
                  it->stats->prompt_tps);
      break;
    }
}

}  // namespace nibble::chat
