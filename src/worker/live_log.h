// LiveLog: while an attempt runs on an object-store root, its log is written on the worker's
// disk and uploaded whole when the attempt ends. So that `barge logs -f` and the UI can follow it
// meanwhile, LiveLog uploads what the log grew by every `every_ms` as a piece named by the byte
// offset it starts at (DataRoot::LiveLogPieceKey); a reader lists the pieces and reads them in
// order. Nothing is uploaded for an attempt that ends before its first interval or prints
// nothing. Once the whole log is up, Discard() deletes the pieces.
//
//   LiveLog live(store, log_key, paths.log_path, LiveLogIntervalMs());
//   ProcessResult r = runner.Run(spec, cancel);
//   live.Stop();
//   ... upload the log ...
//   live.Discard();
//
// Thread-safety: one thread of its own; Stop and Discard from the owner's thread.
#pragma once

#include <cstdint>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "objstore/object_store.h"

namespace barge {

// BARGE_LIVE_LOG_INTERVAL (a duration, e.g. "2s"; "0" turns live logs off), default 2 s.
int64_t LiveLogIntervalMs();

class LiveLog {
 public:
  // `store` is borrowed and must outlive this. every_ms <= 0: ships nothing.
  LiveLog(ObjectStore& store, std::string log_key, std::string local_path, int64_t every_ms);
  ~LiveLog();
  LiveLog(const LiveLog&) = delete;
  LiveLog& operator=(const LiveLog&) = delete;

  // Stops shipping; the thread is gone when it returns.
  void Stop();
  // Deletes the pieces shipped (best effort: an error leaves them for gc).
  void Discard();

 private:
  void Loop();
  void ShipNewBytes();

  ObjectStore& store_;
  const std::string log_key_;
  const std::string local_path_;
  const int64_t every_ms_;
  int64_t shipped_ = 0;  // bytes of the log uploaded as pieces (the thread's, then Discard's)
  bool any_piece_ = false;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace barge
