// The command-line parser lives in runtime/ (AOT executables use it too).
#pragma once

#include "runtime/CommandLine.h"
