#include "app/chat/folder_browser.h"

#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>

namespace nibble::chat {

namespace fs = std::filesystem;

void FolderBrowser::open(Mode mode, const std::string& title, const fs::path& start,
                         const std::string& extension, const std::string& file_name) {
  mode_ = mode;
  title_ = title;
  extension_ = extension;
  file_field_ = file_name;
  std::error_code ec;
  fs::path dir = fs::absolute(start.empty() ? fs::current_path(ec) : start, ec);
  while (!dir.empty() && !fs::is_directory(dir, ec) && dir != dir.root_path())
    dir = dir.parent_path();
  enter(dir.empty() ? fs::path("/") : dir);
  open_requested_ = true;
}

void FolderBrowser::enter(const fs::path& dir) {
  std::error_code ec;
  std::vector<Entry> entries;
  fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) {
    error_ = "Cannot open " + dir.string() + ": " + ec.message();
    return;
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (it->is_directory(ec)) {
      entries.push_back({name, true, fs::exists(p / "config.json", ec)});
    } else if (mode_ != Mode::PickFolder && (extension_.empty() || p.extension() == extension_)) {
      entries.push_back({name, false, false});
    }
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.folder != b.folder ? a.folder : a.name < b.name;
  });
  dir_ = fs::weakly_canonical(dir, ec);
  dir_field_ = dir_.string();
  entries_ = std::move(entries);
  selected_ = -1;
  error_.clear();
}

std::optional<fs::path> FolderBrowser::draw() {
  if (open_requested_) {
    ImGui::OpenPopup(title_.c_str());
    open_requested_ = false;
  }
  const ImVec2 center = ImGui::GetMainViewport()->GetCenter();
  ImGui::SetNextWindowPos(center, ImGuiCond_Appearing, ImVec2(0.5f, 0.5f));
  ImGui::SetNextWindowSize(ImVec2(640, 480), ImGuiCond_Appearing);
  std::optional<fs::path> chosen;
  if (!ImGui::BeginPopupModal(title_.c_str(), nullptr, ImGuiWindowFlags_NoSavedSettings))
    return chosen;

  if (ImGui::Button("Up") && dir_.has_parent_path()) enter(dir_.parent_path());
  ImGui::SameLine();
  ImGui::SetNextItemWidth(-1);
  if (ImGui::InputText("##dir", &dir_field_, ImGuiInputTextFlags_EnterReturnsTrue))
    enter(dir_field_);
  if (!error_.empty()) ImGui::TextColored(ImVec4(1, 0.45f, 0.4f, 1), "%s", error_.c_str());

  const float footer = ImGui::GetFrameHeightWithSpacing() * (mode_ == Mode::SaveFile ? 2.2f : 1.2f);
  ImGui::BeginChild("entries", ImVec2(0, -footer), true);
  std::optional<fs::path> go_into;
  for (int i = 0; i < int(entries_.size()); ++i) {
    const Entry& e = entries_[size_t(i)];
    const std::string label = (e.folder ? "[dir]  " : "       ") + e.name;
    if (ImGui::Selectable(label.c_str(), selected_ == i, ImGuiSelectableFlags_AllowDoubleClick)) {
      selected_ = i;
      if (!e.folder) file_field_ = e.name;
      if (ImGui::IsMouseDoubleClicked(0)) {
        if (e.folder)
          go_into = dir_ / e.name;
        else
          chosen = dir_ / e.name;
      }
    }
    if (e.model) {
      ImGui::SameLine(ImGui::GetContentRegionAvail().x - 60);
      ImGui::TextColored(ImVec4(0.45f, 0.8f, 0.55f, 1), "model");
    }
  }
  ImGui::EndChild();
  if (go_into) enter(*go_into);

  if (mode_ == Mode::SaveFile) {
    ImGui::SetNextItemWidth(-1);
    ImGui::InputText("##file", &file_field_);
  }
  const bool have_selection = selected_ >= 0 && selected_ < int(entries_.size());
  const char* confirm = mode_ == Mode::PickFolder ? "Choose"
                        : mode_ == Mode::OpenFile ? "Open"
                                                  : "Save";
  if (ImGui::Button(confirm, ImVec2(120, 0))) {
    if (mode_ == Mode::PickFolder) {
      // The selected subfolder, or the folder being shown.
      chosen = have_selection && entries_[size_t(selected_)].folder
                   ? dir_ / entries_[size_t(selected_)].name
                   : dir_;
    } else if (!file_field_.empty()) {
      fs::path file = dir_ / file_field_;
      if (mode_ == Mode::SaveFile && !extension_.empty() && file.extension() != extension_)
        file += extension_;
      chosen = file;
    }
  }
  ImGui::SameLine();
  if (ImGui::Button("Cancel", ImVec2(120, 0))) ImGui::CloseCurrentPopup();
  if (chosen) ImGui::CloseCurrentPopup();
  ImGui::EndPopup();
  return chosen;
}

}  // namespace nibble::chat
