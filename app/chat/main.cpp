// nibble-chat: a desktop chat with a local model beside what the GPU is doing. The render loop
// follows Dear ImGui's example_glfw_vulkan; the engine runs on the Worker's thread.
#include <imgui.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "app/chat/chat_view.h"
#include "app/chat/gpu_view.h"
#include "app/chat/model_panel.h"
#include "app/chat/options.h"
#include "app/chat/renderer.h"
#include "app/chat/script.h"
#include "app/chat/session.h"
#include "app/chat/theme.h"
#include "engine/error.h"
#include "loader/load_model.h"

using namespace nibble::chat;

namespace {

// One window filling the screen: model and settings | conversation | device.
void draw_layout(Session& session, ModelPanel& model_panel, ChatView& chat_view, GpuView& gpu_view,
                 const Fonts& fonts) {
  ImGui::SetNextWindowPos(ImVec2(0, 0));
  ImGui::SetNextWindowSize(ImGui::GetIO().DisplaySize);
  ImGui::Begin("nibble-chat", nullptr,
               ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                   ImGuiWindowFlags_NoBringToFrontOnFocus | ImGuiWindowFlags_NoSavedSettings);
  // The side columns shrink a little on small screens; the conversation takes what is left.
  const float width = ImGui::GetIO().DisplaySize.x;
  const float left_width = std::clamp(width * 0.24f, 250.0f, 330.0f);
  const float right_width = std::clamp(width * 0.25f, 250.0f, 340.0f);
  ImGui::BeginChild("left", ImVec2(left_width, 0), true);
  model_panel.draw(session, fonts);
  ImGui::EndChild();
  ImGui::SameLine();
  const float center =
      ImGui::GetContentRegionAvail().x - right_width - ImGui::GetStyle().ItemSpacing.x;
  ImGui::BeginChild("center", ImVec2(center, 0), false);
  chat_view.draw(session, fonts);
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginChild("right", ImVec2(0, 0), true);
  gpu_view.draw(session, fonts);
  ImGui::EndChild();
  ImGui::End();
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse_options(argc, argv);
  } catch (const nibble::Error& e) {
    std::fprintf(stderr, "nibble-chat: error: %s\n", e.what());
    return 2;
  }
  if (options.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  try {
    Renderer renderer(options.width, options.height, "nibble-chat");
    apply_theme();
    Session session(renderer.engine_device());
    session.model_choice = options.model;
    if (session.model_choice.path.empty()) {
      const auto bundled = nibble::default_model_dir();
      if (std::filesystem::exists(bundled / "config.json"))
        session.model_choice.path = bundled.string();
    }
    if (options.open) session.open(*options.open);
    if (!options.system_prompt.empty()) session.conversation.system_prompt = options.system_prompt;
    ModelPanel model_panel(renderer.device_name(), renderer.device_local_bytes());
    ChatView chat_view;
    GpuView gpu_view(renderer.device_name(), renderer.device_local_bytes());
    std::optional<Script> script;
    if (!options.prompts.empty() || options.screenshot || options.save) script.emplace(options);
    if (!session.model_choice.path.empty()) session.load_model();

    std::string title_model;
    while (!renderer.should_close()) {
      // Redraw often while the model works; otherwise sleep until the user does something.
      const bool busy = session.status().state == WorkerState::Loading || session.generating();
      renderer.wait_events(busy || script ? 1.0 / 30 : 0.25);
      session.update();
      renderer.begin_frame();
      draw_layout(session, model_panel, chat_view, gpu_view, renderer.fonts());
      renderer.end_frame();
      // The title names the model in use.
      const std::string model =
          session.model_ready() ? session.status().model->dir.filename().string() : "";
      if (model != title_model) {
        title_model = model;
        renderer.set_title(model.empty() ? "nibble-chat" : model + " - nibble-chat");
      }
      if (script && script->after_frame(session, renderer)) break;
    }
    return script ? script->exit_code() : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nibble-chat: error: %s\n", e.what());
    return 1;
  }
}
