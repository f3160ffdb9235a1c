// Worker labels and step requirements ("arch=arm64,gpu=a10"): how a step's `labels:` routes its
// tasks to the workers that have them.
//
//   Labels worker = MachineLabels();                    // {arch: amd64, os: linux}
//   Merge(worker, *ParseLabels("gpu=a10,zone=eu-1"));   // `--labels`
//   task "requires" CanonicalLabels(step.labels);       // "arch=arm64"
//   a worker takes a task iff its requirement is one of LabelSubsets(worker)
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace barge {

using Labels = std::map<std::string, std::string>;

// Label keys and values, and queue names: letters, digits, '_', '-', '.' and '/'; 1-63 chars.
bool IsValidLabelText(std::string_view s);

// Parses "k=v,k2=v2" (whitespace around parts ignored; empty text is no labels).
absl::StatusOr<Labels> ParseLabels(std::string_view text);

// "k=v,k2=v2" with keys in order: the one spelling of a set of labels, stored with each task.
std::string CanonicalLabels(const Labels& labels);

// The canonical spellings of every subset of `labels` (including the empty one): the task
// requirements a worker with these labels satisfies. Labels beyond kMaxLabels are refused by
// ParseLabels, which bounds this at 2^kMaxLabels strings.
inline constexpr int kMaxLabels = 8;
std::vector<std::string> LabelSubsets(const Labels& labels);

// What this machine is, in the spelling container images use: arch=amd64|arm64|..., os=linux.
Labels MachineLabels();

// Labels as stored with a worker (a JSON object of strings); anything else reads as none, a
// value that is not a string as "".
Labels LabelsFromJson(std::string_view json);

// Adds or replaces `extra`'s labels in `base`.
void Merge(Labels& base, const Labels& extra);

}  // namespace barge
