// The lease book: the at most two leases a key holds, as pure functions over its plain
// RefillState (docs/architecture.md, "Leases expire and are given back"). Spending is
// first-in first-out, so what is left of the oldest lease is whatever the balance holds
// beyond the newer one; a third grant folds into the newer lease, keeping the earlier
// expiries, so no token is ever held past the expiry it was granted with.
// Pure: no clock, no lock, no atomics; the scheduler calls these under its lock.
#pragma once

#include <cstdint>

#include "limiter/entry.h"

namespace tollgate::core {

// Adds a token-bucket lease (credit > 0) to the book.
void book_credit(RefillState& s, const HeldLease& lease) noexcept;

// Whether the oldest lease has reached its local expiry at `now`.
bool book_oldest_due(const RefillState& s, Ms now) noexcept;

// What is left of the oldest lease when the key's balance is `balance`: the tokens
// beyond the newer lease, never negative.
std::int64_t book_oldest_left(const RefillState& s, std::int64_t balance) noexcept;

// Ends the oldest lease, `taken` of its tokens having been taken out of the balance (to
// be given back): they were not spent, so they stay out of the next demand sample.
void book_end_oldest(RefillState& s, std::int64_t taken) noexcept;

}  // namespace tollgate::core
