#!/usr/bin/env bash
# The S3 protocol server the tests run against (npm package s3rver, pinned), into .deps/s3rver.
exec "$(dirname "$0")/npm_pin.sh" s3rver 3.7.1 .deps/s3rver
