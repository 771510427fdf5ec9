#include "app/chat/chat_view.h"

#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>

#include "app/chat/code_blocks.h"
#include "app/chat/theme.h"

namespace nibble::chat {

namespace {

constexpr float kBubblePad = 12.0f;

// Channels of a message's draw list: backgrounds must go under the text drawn before them.
enum Channel { kBubbleChannel, kCodeChannel, kTextChannel, kChannels };

// Prose wraps at the bubble; code is monospaced on a darker panel.
void draw_body(std::string_view text, const Fonts& fonts, float right_edge) {
  ImDrawList* dl = ImGui::GetWindowDrawList();
  for (const TextBlock& b : split_code_blocks(text)) {
    if (!b.code) {
      ImGui::TextUnformatted(b.text.data(), b.text.data() + b.text.size());
      continue;
    }
    const float left = ImGui::GetCursorScreenPos().x;
    ImGui::Dummy(ImVec2(0, 2));
    const ImVec2 top = ImGui::GetCursorScreenPos();
    ImGui::Indent(8);
    if (!b.language.empty()) {
      ImGui::PushStyleColor(ImGuiCol_Text, color::kMuted);
      ImGui::TextUnformatted(b.language.data(), b.language.data() + b.language.size());
      ImGui::PopStyleColor();
    }
    ImGui::PushFont(fonts.mono);
    ImGui::TextUnformatted(b.text.data(), b.text.data() + b.text.size());
    ImGui::PopFont();
    ImGui::Unindent(8);
    const float bottom = ImGui::GetItemRectMax().y + 6;
    dl->ChannelsSetCurrent(kCodeChannel);
    dl->AddRectFilled(ImVec2(left, top.y - 4), ImVec2(right_edge, bottom), color::kCodeBackground,
                      5);
    dl->ChannelsSetCurrent(kTextChannel);
    ImGui::Dummy(ImVec2(0, 4));
  }
}

std::string answer_footer(const Message& m, bool writing, const WorkerStatus& status) {
  char line[200];
  if (writing) {
    std::snprintf(line, sizeof line, "writing... %d tokens, %.1f tok/s", status.answer_tokens,
                  status.answer_tps);
  } else if (m.stats && m.stats->stop == "error") {
    return "cut short by an error";
  } else if (m.stats) {
    const AnswerStats& s = *m.stats;
    std::snprintf(line, sizeof line,
                  "%d tokens at %.1f tok/s  ·  prompt %d tokens at %.0f tok/s (%d reused)  ·  %s",
                  s.generated_tokens, s.generation_tps, s.prompt_tokens, s.prompt_tps,
                  s.reused_tokens, s.stop.c_str());
  } else {
    return {};
  }
  return line;
}

std::string default_file_name() {
  char name[64];
  const std::time_t t = std::time(nullptr);
  std::strftime(name, sizeof name, "chat-%Y%m%d-%H%M%S.json", std::localtime(&t));
  return name;
}

}  // namespace

void ChatView::draw(Session& session, const Fonts& fonts) {
  draw_toolbar(session, fonts);
  draw_system_prompt(session);
  draw_errors(session);

  const float input_height = ImGui::GetTextLineHeight() * 4 + 24;
  ImGui::BeginChild("messages", ImVec2(0, -input_height), true);
  const bool at_end = ImGui::GetScrollY() >= ImGui::GetScrollMaxY() - 4;
  const float width = ImGui::GetContentRegionAvail().x;
  if (session.conversation.messages.empty()) {
    const char* hint = session.model_ready() ? "Say something to start the conversation."
                       : session.status().state == WorkerState::Loading
                           ? "Loading the model..."
                           : "Load a model to start chatting.";
    const ImVec2 size = ImGui::CalcTextSize(hint);
    ImGui::SetCursorPos(ImVec2((width - size.x) * 0.5f, ImGui::GetWindowHeight() * 0.45f));
    ImGui::TextColored(color::kMuted, "%s", hint);
  }
  for (size_t i = 0; i < session.conversation.messages.size(); ++i) {
    ImGui::PushID(int(i));
    draw_message(session, i, fonts, width);
    ImGui::PopID();
  }
  // Follow the answer as it streams, unless the user scrolled up to read.
  if (scroll_to_end_ || (at_end && session.generating())) ImGui::SetScrollHereY(1.0f);
  scroll_to_end_ = false;
  ImGui::EndChild();
  // Actions clicked in the list change it, so they run once it is drawn.
  if (regenerate_) session.regenerate();
  if (resend_) {
    session.edit_and_resend(*resend_, edit_text_);
    editing_ = -1;
    scroll_to_end_ = true;
  }
  regenerate_ = false;
  resend_.reset();

  draw_input(session);

  if (auto path = files_.draw()) {
    if (saving_)
      session.save(*path);
    else
      session.open(*path);
    editing_ = -1;
  }
}

void ChatView::draw_toolbar(Session& session, const Fonts& fonts) {
  ImGui::PushFont(fonts.large);
  ImGui::TextUnformatted("Chat");
  ImGui::PopFont();
  const float buttons = 3 * 80 + 2 * ImGui::GetStyle().ItemSpacing.x;
  const float buttons_x = ImGui::GetContentRegionMax().x - buttons;
  if (const auto& model = session.status().model) {
    const std::string with = "with " + model->dir.filename().string() + " on " + model->backend;
    ImGui::SameLine();
    if (ImGui::GetCursorPosX() + ImGui::CalcTextSize(with.c_str()).x < buttons_x) {  // if room
      ImGui::AlignTextToFramePadding();
      ImGui::TextColored(color::kMuted, "%s", with.c_str());
    }
  }
  const bool idle = !session.generating();
  ImGui::SameLine(buttons_x);
  ImGui::BeginDisabled(!idle);
  if (ImGui::Button("New chat", ImVec2(80, 0))) {
    session.new_chat();
    editing_ = -1;
  }
  ImGui::SameLine();
  if (ImGui::Button("Open...", ImVec2(80, 0))) {
    saving_ = false;
    files_.open(FolderBrowser::Mode::OpenFile, "Open a conversation", {}, ".json");
  }
  ImGui::EndDisabled();
  ImGui::SameLine();
  if (ImGui::Button("Save...", ImVec2(80, 0))) {
    saving_ = true;
    files_.open(FolderBrowser::Mode::SaveFile, "Save the conversation", {}, ".json",
                default_file_name());
  }
}

void ChatView::draw_system_prompt(Session& session) {
  // Collapsed, the header previews the prompt's first line.
  std::string& prompt = session.conversation.system_prompt;
  std::string label = "System prompt";
  if (!prompt.empty()) label += ": " + prompt.substr(0, std::min(prompt.find('\n'), size_t(60)));
  label += "###system";
  if (ImGui::CollapsingHeader(label.c_str()))
    ImGui::InputTextMultiline("##system", &prompt, ImVec2(-1, ImGui::GetTextLineHeight() * 3 + 8));
}

void ChatView::draw_errors(Session& session) {
  for (size_t i = 0; i < session.errors.size();) {
    ImGui::PushID(int(i));
    ImGui::PushStyleColor(ImGuiCol_ChildBg, ImVec4(0.35f, 0.12f, 0.12f, 1));
    const float wrap = ImGui::GetContentRegionAvail().x - 90;
    const float height =
        ImGui::CalcTextSize(session.errors[i].c_str(), nullptr, false, wrap).y + 16;
    ImGui::BeginChild("error", ImVec2(0, height), false);
    ImGui::SetCursorPos(ImVec2(8, 8));
    ImGui::PushTextWrapPos(wrap);
    ImGui::TextUnformatted(session.errors[i].c_str());
    ImGui::PopTextWrapPos();
    ImGui::SameLine(ImGui::GetWindowWidth() - 78);
    const bool dismiss = ImGui::SmallButton("Dismiss");
    ImGui::EndChild();
    ImGui::PopStyleColor();
    ImGui::PopID();
    if (dismiss)
      session.errors.erase(session.errors.begin() + long(i));
    else
      ++i;
  }
}

void ChatView::draw_message(Session& session, size_t index, const Fonts& fonts, float width) {
  Message& m = session.conversation.messages[index];
  const bool user = m.role == "user";
  const bool last = index + 1 == session.conversation.messages.size();
  const bool writing = last && !user && session.generating();
  const WorkerStatus& status = session.status();

  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->ChannelsSplit(kChannels);
  dl->ChannelsSetCurrent(kTextChannel);
  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const float x0 = ImGui::GetCursorPosX();
  ImGui::SetCursorPos(ImVec2(x0 + kBubblePad, ImGui::GetCursorPosY() + kBubblePad));
  ImGui::BeginGroup();
  ImGui::PushTextWrapPos(x0 + width - kBubblePad);

  // Header: who, then the actions on the right.
  std::string who = user ? "You" : "Assistant";
  if (!user && status.model) who = status.model->dir.filename().string();
  ImGui::TextColored(user ? color::kAccent : color::kGood, "%s", who.c_str());
  const bool idle = session.can_send();
  // The actions, right-aligned: their width is known before they are drawn.
  std::vector<const char*> actions = {"Copy"};
  if (user && editing_ != int(index)) actions.push_back("Edit");
  if (!user && last) actions.push_back("Regenerate");
  float actions_width = 0;
  for (const char* a : actions)
    actions_width += ImGui::CalcTextSize(a).x + 2 * ImGui::GetStyle().FramePadding.x +
                     ImGui::GetStyle().ItemSpacing.x;
  ImGui::SameLine();
  ImGui::SetCursorScreenPos(
      ImVec2(origin.x + width - kBubblePad - actions_width + ImGui::GetStyle().ItemSpacing.x,
             ImGui::GetCursorScreenPos().y));
  for (const char* a : actions) {
    if (a != actions.front()) ImGui::SameLine();
    const bool copy = a == actions.front();
    ImGui::BeginDisabled(!copy && !idle);
    if (ImGui::SmallButton(a)) {
      if (copy) {
        ImGui::SetClipboardText(m.content.c_str());
      } else if (user) {
        editing_ = int(index);
        edit_text_ = m.content;
      } else {
        regenerate_ = true;
      }
    }
    ImGui::EndDisabled();
  }

  if (user && editing_ == int(index)) {
    ImGui::InputTextMultiline("##edit", &edit_text_,
                              ImVec2(width - 2 * kBubblePad, ImGui::GetTextLineHeight() * 5));
    ImGui::BeginDisabled(!idle);
    if (ImGui::Button("Send edited")) resend_ = index;
    ImGui::EndDisabled();
    ImGui::SameLine();
    if (ImGui::Button("Cancel")) editing_ = -1;
  } else {
    draw_body(writing ? m.content + "\u258D" : m.content, fonts, origin.x + width - kBubblePad);
  }
  if (!user) {
    const std::string footer = answer_footer(m, writing, status);
    if (!footer.empty()) ImGui::TextColored(color::kMuted, "%s", footer.c_str());
  }
  ImGui::PopTextWrapPos();
  ImGui::EndGroup();

  const float bottom = ImGui::GetItemRectMax().y + kBubblePad;
  dl->ChannelsSetCurrent(kBubbleChannel);
  dl->AddRectFilled(origin, ImVec2(origin.x + width, bottom),
                    user ? color::kUserBubble : color::kAssistantBubble, 8);
  dl->ChannelsMerge();
  ImGui::SetCursorScreenPos(ImVec2(origin.x, bottom));
  ImGui::Dummy(ImVec2(width, 6));
}

void ChatView::draw_input(Session& session) {
  const float button_width = 110;
  const float height = ImGui::GetTextLineHeight() * 4 + 12;
  const bool ready = session.can_send();
  ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x - button_width -
                          ImGui::GetStyle().ItemSpacing.x);
  const ImGuiInputTextFlags flags =
      ImGuiInputTextFlags_EnterReturnsTrue | ImGuiInputTextFlags_CtrlEnterForNewLine;
  if (refocus_input_) {
    ImGui::SetKeyboardFocusHere();
    refocus_input_ = false;
  }
  bool send = ImGui::InputTextMultiline("##message", &input_, ImVec2(0, height), flags);
  if (input_.empty() && !ImGui::IsItemActive()) {
    // Hint text over the empty field (ImGui 1.86 has no hint for multi-line fields).
    const ImVec2 at = ImGui::GetItemRectMin();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->PushClipRect(at, ImGui::GetItemRectMax(), true);
    dl->AddText(ImVec2(at.x + 8, at.y + 6), ImGui::GetColorU32(color::kMuted),
                ready ? "Message (Enter sends, Ctrl+Enter for a new line, Esc stops)"
                      : "Load a model to chat");
    dl->PopClipRect();
  }
  ImGui::SameLine();
  ImGui::BeginGroup();
  if (session.generating() && ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape)))
    session.stop();
  if (session.generating()) {
    ImGui::PushStyleColor(ImGuiCol_Button, ImVec4(0.55f, 0.22f, 0.22f, 1));
    if (ImGui::Button("Stop", ImVec2(button_width, height))) session.stop();
    ImGui::PopStyleColor();
  } else {
    ImGui::BeginDisabled(!ready || input_.empty());
    send |= ImGui::Button("Send", ImVec2(button_width, height));
    ImGui::EndDisabled();
  }
  ImGui::EndGroup();
  if (send && ready && !input_.empty()) {
    session.send(input_);
    input_.clear();
    scroll_to_end_ = true;
    refocus_input_ = true;
  }
}

}  // namespace nibble::chat
