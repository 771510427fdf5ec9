// A small built-in file dialog (Dear ImGui has none): pick a model folder, a conversation to
// open, or where to save one. Model folders (with a config.json) are marked in the listing.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nibble::chat {

class FolderBrowser {
 public:
  enum class Mode { PickFolder, OpenFile, SaveFile };

  // `extension` (e.g. ".json") filters the files listed in the file modes; `file_name` is the
  // suggested name when saving.
  void open(Mode mode, const std::string& title, const std::filesystem::path& start,
            const std::string& extension = "", const std::string& file_name = "");
  // Draws the dialog while it is open; returns the chosen path once, when the user confirms.
  std::optional<std::filesystem::path> draw();

 private:
  struct Entry {
    std::string name;
    bool folder = false, model = false;
  };
  void enter(const std::filesystem::path& dir);

  Mode mode_ = Mode::PickFolder;
  std::string title_, extension_;
  bool open_requested_ = false;
  std::filesystem::path dir_;
  std::string dir_field_, file_field_, error_;
  std::vector<Entry> entries_;
  int selected_ = -1;
};

}  // namespace nibble::chat
