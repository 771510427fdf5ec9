#include "app/nibble/progress.h"

#include <unistd.h>

#include <cstdio>

namespace nibble::cli {

void draw_progress(const std::string& what, int done, int total, const std::string& item) {
  static const bool tty = isatty(STDERR_FILENO);
  const int width = 30, filled = total ? done * width / total : width;
  if (tty) {
    std::fprintf(stderr, "\r%s [%.*s%*s] %3d%% %-40.40s", what.c_str(), filled,
                 "##############################", width - filled, "",
                 total ? done * 100 / total : 100, item.c_str());
    if (done == total) std::fputc('\n', stderr);
  } else if (done == total || done * 10 / total != (done - 1) * 10 / total) {
    std::fprintf(stderr, "%s: %d/%d\n", what.c_str(), done, total);
  }
}

std::function<void(int, int, const std::string&)> progress_callback(std::string what) {
  return [what = std::move(what)](int done, int total, const std::string& item) {
    draw_progress(what, done, total, item);
  };
}

}  // namespace nibble::cli
