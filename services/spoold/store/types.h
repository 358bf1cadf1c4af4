// The store reads and writes the core's domain types (core/types.h); these
// names keep the store's code and tests in their own namespace.
#pragma once

#include "core/types.h"

namespace spool::store {

using core::AckItem;
using core::Completion;
using core::EnqueueResult;
using core::Headers;
using core::Job;
using core::JobLease;
using core::JobState;
using core::LeasedJob;
using core::LeaseParams;
using core::NackParams;
using core::NackResult;
using core::NewJob;
using core::QueueConfig;
using core::QueueCounts;
using core::QueueDepth;
using core::QueueDepths;
using core::ReapResult;

}  // namespace spool::store
