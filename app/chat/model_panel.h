// The left column: which model to load and how (folder, backend, quantization, context) with the
// memory it will need, the loading progress, then the sampling settings.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "app/chat/folder_browser.h"
#include "app/chat/load_estimate.h"
#include "app/chat/renderer.h"
#include "app/chat/session.h"

namespace nibble::chat {

class ModelPanel {
 public:
  // `device_memory`: the window's GPU memory, what a GPU backend's model must fit in.
  ModelPanel(std::string device_name, uint64_t device_memory)
      : device_name_(std::move(device_name)), device_memory_(device_memory) {}
  void draw(Session& session, const Fonts& fonts);

 private:
  void draw_model(Session& session, const Fonts& fonts);
  void draw_estimate(const Session& session);
  void draw_sampling(Session& session);
  void refresh_estimate(const ModelChoice& choice);

  std::string device_name_;
  uint64_t device_memory_ = 0;
  FolderBrowser browser_;
  // The estimate of the current choice, recomputed when the choice changes.
  std::string estimate_key_;
  std::optional<LoadEstimate> estimate_;
  std::string estimate_error_;
};

}  // namespace nibble::chat
