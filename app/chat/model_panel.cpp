#include "app/chat/model_panel.h"

#include <imgui.h>
#include <imgui_stdlib.h>

#include <cstdio>

#include "app/chat/theme.h"
#include "engine/make_backend.h"

namespace nibble::chat {

namespace {

void section(const char* title, const Fonts& fonts) {
  ImGui::PushFont(fonts.large);
  ImGui::TextUnformatted(title);
  ImGui::PopFont();
}

// A label on the left, the widget filling the rest of the row.
void row_label(const char* label) {
  ImGui::AlignTextToFramePadding();
  ImGui::TextUnformatted(label);
  ImGui::SameLine(110);
  ImGui::SetNextItemWidth(-1);
}

}  // namespace

void ModelPanel::draw(Session& session, const Fonts& fonts) {
  draw_model(session, fonts);
  ImGui::Spacing();
  ImGui::Separator();
  ImGui::Spacing();
  section("Sampling", fonts);
  if (session.model_ready()) {
    // Back to the model's generation_config.json.
    ImGui::SameLine(ImGui::GetContentRegionMax().x - 120);
    ImGui::AlignTextToFramePadding();
    if (ImGui::Button("Model defaults", ImVec2(120, 0))) {
      const GenerationDefaults& d = session.status().model->defaults;
      session.generation.sampling = d.sampling;
      if (d.max_new_tokens > 0) session.generation.max_new_tokens = d.max_new_tokens;
    }
  }
  draw_sampling(session);
}

void ModelPanel::draw_model(Session& session, const Fonts& fonts) {
  section("Model", fonts);
  ModelChoice& choice = session.model_choice;
  const WorkerStatus& status = session.status();
  const bool loading = status.state == WorkerState::Loading;
  const bool busy = loading || status.state == WorkerState::Generating;

  ImGui::BeginDisabled(busy);
  ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x - 84);
  ImGui::InputText("##path", &choice.path);
  ImGui::SameLine();
  if (ImGui::Button("Browse...", ImVec2(-1, 0)))
    browser_.open(FolderBrowser::Mode::PickFolder, "Open a model folder", choice.path);
  if (auto dir = browser_.draw()) choice.path = dir->string();

  row_label("Backend");
  std::vector<std::string> backends = {"auto"};
  for (const std::string& b : available_backends()) backends.push_back(b);
  if (ImGui::BeginCombo("##backend", choice.backend.c_str())) {
    for (const std::string& b : backends)
      if (ImGui::Selectable(b.c_str(), b == choice.backend)) choice.backend = b;
    ImGui::EndCombo();
  }

  row_label("Quantize");
  int quant = choice.quant.enabled ? (choice.quant.type == QuantType::NF4 ? 0 : 1) : 2;
  if (ImGui::Combo("##quant", &quant,
                   "nf4 (4-bit NormalFloat)\0fp4 (4-bit float)\0none (16-bit)\0")) {
    choice.quant.enabled = quant != 2;
    if (quant != 2) choice.quant.type = quant == 0 ? QuantType::NF4 : QuantType::FP4;
  }
  ImGui::BeginDisabled(!choice.quant.enabled);
  row_label("Compute");
  int compute = int(choice.quant.compute);  // ComputeDType: F32, F16, BF16
  if (ImGui::Combo("##compute", &compute, "fp32\0fp16\0bf16\0"))
    choice.quant.compute = ComputeDType(compute);
  ImGui::SetCursorPosX(110);
  ImGui::Checkbox("Double quant", &choice.quant.double_quant);
  ImGui::EndDisabled();
  row_label("Context");  // 0: the model's (the estimate below shows it)
  ImGui::InputInt("##context", &choice.context, 256, 1024);
  if (choice.context < 0) choice.context = 0;
  ImGui::EndDisabled();

  draw_estimate(session);

  const float half = (ImGui::GetContentRegionAvail().x - ImGui::GetStyle().ItemSpacing.x) / 2;
  ImGui::BeginDisabled(busy || choice.path.empty());
  if (ImGui::Button(session.model_ready() ? "Reload" : "Load", ImVec2(half, 0)))
    session.load_model();
  ImGui::EndDisabled();
  ImGui::SameLine();
  if (loading) {
    if (ImGui::Button("Cancel", ImVec2(half, 0))) session.cancel_load();
  } else {
    ImGui::BeginDisabled(busy || !session.model_ready());
    if (ImGui::Button("Unload", ImVec2(half, 0))) session.unload_model();
    ImGui::EndDisabled();
  }

  if (loading) {
    const float fraction =
        status.load_total ? float(status.load_done) / float(status.load_total) : 0;
    char overlay[64];
    std::snprintf(overlay, sizeof overlay, "%d / %d tensors", status.load_done, status.load_total);
    ImGui::ProgressBar(fraction, ImVec2(-1, 0), status.load_total ? overlay : "opening...");
    ImGui::PushStyleColor(ImGuiCol_Text, color::kMuted);
    ImGui::TextUnformatted(status.load_tensor.c_str());
    ImGui::PopStyleColor();
  } else if (status.model) {
    const ModelInfo& m = *status.model;
    ImGui::TextColored(color::kGood, "Loaded %s", m.dir.filename().c_str());
    ImGui::PushStyleColor(ImGuiCol_Text, color::kMuted);
    ImGui::PushTextWrapPos(0);
    ImGui::Text("on %s (%s) in %.1f s", m.backend.c_str(), m.device.c_str(), m.load_seconds);
    ImGui::Text("%s; context %d tokens", m.quant.c_str(), m.context);
    ImGui::PopTextWrapPos();
    ImGui::PopStyleColor();
  } else {
    ImGui::TextColored(color::kMuted, "No model loaded");
  }
}

void ModelPanel::refresh_estimate(const ModelChoice& choice) {
  // The CPU backend keeps its KV cache in float32, the GPU backends in float16.
  const DType kv_dtype = choice.backend == "cpu" ? DType::F32 : DType::F16;
  char key[64];
  std::snprintf(key, sizeof key, "|%d|%d|%d|%d|%d", choice.quant.enabled, int(choice.quant.type),
                int(choice.quant.double_quant), choice.context, int(kv_dtype));
  if (estimate_key_ == choice.path + key) return;
  estimate_key_ = choice.path + key;
  estimate_.reset();
  estimate_error_.clear();
  try {
    estimate_ = estimate_load(choice.path, choice.quant, choice.context, kv_dtype);
  } catch (const std::exception& e) {
    estimate_error_ = e.what();
  }
}

void ModelPanel::draw_estimate(const Session& session) {
  const ModelChoice& choice = session.model_choice;
  if (choice.path.empty()) return;
  refresh_estimate(choice);
  ImGui::PushTextWrapPos(0);
  if (!estimate_) {
    ImGui::TextColored(color::kError, "%s", estimate_error_.c_str());
    ImGui::PopTextWrapPos();
    return;
  }
  const LoadEstimate& e = *estimate_;
  const ModelConfig& c = e.config;
  ImGui::PushStyleColor(ImGuiCol_Text, color::kMuted);
  ImGui::Text("%s: %d layers, hidden %d, %d/%d heads, vocab %d", c.architecture.c_str(),
              c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads,
              c.vocab_size);
  ImGui::PopStyleColor();
  const bool cpu = choice.backend == "cpu";
  const uint64_t budget = cpu ? host_memory_bytes() : device_memory_;
  const bool fits = budget == 0 || e.plan.total() <= budget;
  ImGui::TextColored(fits ? ImGui::GetStyle().Colors[ImGuiCol_Text] : color::kError,
                     "Needs about %s", format_bytes(e.plan.total()).c_str());
  ImGui::PushStyleColor(ImGuiCol_Text, color::kMuted);
  ImGui::Text("weights %s + KV cache %s (%d tokens) + activations %s",
              format_bytes(e.plan.weights).c_str(), format_bytes(e.plan.kv_cache).c_str(),
              e.context, format_bytes(e.plan.activations).c_str());
  ImGui::Text("of %s %s", format_bytes(budget).c_str(),
              cpu ? "host memory" : ("on " + device_name_).c_str());
  ImGui::PopStyleColor();
  if (!fits) ImGui::TextColored(color::kError, "It will not fit: try 4-bit or a shorter context.");
  ImGui::PopTextWrapPos();
}

void ModelPanel::draw_sampling(Session& session) {
  SamplerConfig& s = session.generation.sampling;
  row_label("Temperature");
  ImGui::SliderFloat("##temp", &s.temperature, 0.0f, 2.0f,
                     s.temperature <= 0 ? "0 (greedy)" : "%.2f");
  row_label("Top-k");
  ImGui::SliderInt("##topk", &s.top_k, 0, 200, s.top_k == 0 ? "off" : "%d");
  row_label("Top-p");
  ImGui::SliderFloat("##topp", &s.top_p, 0.0f, 1.0f, s.top_p >= 1 ? "off" : "%.2f");
  row_label("Min-p");
  ImGui::SliderFloat("##minp", &s.min_p, 0.0f, 1.0f, s.min_p <= 0 ? "off" : "%.2f");
  row_label("Repetition");
  ImGui::SliderFloat("##rep", &s.repetition_penalty, 1.0f, 2.0f,
                     s.repetition_penalty == 1 ? "off" : "%.2f");
  row_label("Max tokens");
  ImGui::SliderInt("##max", &session.generation.max_new_tokens, 1, 4096);
  row_label("Seed");
  ImGui::InputScalar("##seed", ImGuiDataType_U64, &s.seed);
}

}  // namespace nibble::chat
