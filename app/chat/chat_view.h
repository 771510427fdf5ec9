// The conversation column: toolbar (new, open, save), the system prompt, error banners, the
// messages with their actions (copy, edit and resend, regenerate) and the message box with Send /
// Stop.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "app/chat/folder_browser.h"
#include "app/chat/renderer.h"
#include "app/chat/session.h"

namespace nibble::chat {

class ChatView {
 public:
  void draw(Session& session, const Fonts& fonts);

 private:
  void draw_toolbar(Session& session, const Fonts& fonts);
  void draw_system_prompt(Session& session);
  void draw_errors(Session& session);
  void draw_message(Session& session, size_t index, const Fonts& fonts, float width);
  void draw_input(Session& session);

  std::string input_;
  int editing_ = -1;  // index of the user message being edited
  std::string edit_text_;
  // Clicked in the message list this frame; applied after it is drawn (they change the list).
  bool regenerate_ = false;
  std::optional<size_t> resend_;  // the edited user message
  bool scroll_to_end_ = false;
  bool refocus_input_ = false;  // Enter sent the message and left the box: go back to it
  bool saving_ = false;         // the file dialog is for saving (else for opening)
  FolderBrowser files_;
};

}  // namespace nibble::chat
