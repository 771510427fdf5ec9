// The error of a lost GPU device (a GPU fault, a driver reset or a timeout): every later use of the
// device fails the same way, so whatever holds a model on it must load it again, on a new device
// or on the CPU. A nibble::Error, so callers that do not care need no change; the desktop app
// catches it to unload the dead model.
#pragma once
#include "engine/error.h"

namespace nibble {

struct DeviceLost : Error {
  using Error::Error;
};

}  // namespace nibble
