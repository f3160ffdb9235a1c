// Durations ("90s", "30m", "1h30m", "250ms") and sizes ("512MiB", "2GiB", "1.5G") as users write
// them in pipeline files and flags, and their human-readable forms.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace barge {

// Parses a duration with units (ms, s, m, h, d), possibly compound ("1h30m"). A bare number is
// rejected, because "30" is ambiguous. Returns milliseconds.
absl::StatusOr<int64_t> ParseDurationMs(std::string_view text);

// Parses a size with a unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB (decimal for KB/MB/...,
// binary for K/Ki/KiB and friends, as Kubernetes does). Returns bytes.
absl::StatusOr<int64_t> ParseSizeBytes(std::string_view text);

std::string FormatDurationMs(int64_t ms);  // "850ms", "12.3s", "4m05s", "2h03m"
std::string FormatBytes(int64_t bytes);    // "0B", "1.5KiB", "12.0MiB"
// ISO-8601 UTC text of a millisecond timestamp, "2026-11-22T13:45:01.250Z" ("" for 0).
std::string IsoTime(int64_t ms);

}  // namespace barge
