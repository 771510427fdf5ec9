// The progress line of long CLI steps (loading, quantizing, bench repeats) on stderr: a bar
// redrawn in place on a terminal, and in a log a line per tenth of the work.
#pragma once
#include <functional>
#include <string>

namespace nibble::cli {

// Shows `done` of `total` steps of `what`, with the current item's name beside the bar; ends
// the line when done == total.
void draw_progress(const std::string& what, int done, int total, const std::string& item = "");

// A ModelOptions::on_progress callback drawing the progress of `what` ("loading", ...).
std::function<void(int, int, const std::string&)> progress_callback(std::string what);

}  // namespace nibble::cli
