#include "limiter/policy_slots.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>

namespace tollgate::core {

PolicySet::PolicySet(std::shared_ptr<const Config> c)
    : config(std::move(c)),
      index(config->policies),
      max_key_length(std::min<std::size_t>(config->max_key_length, 65535)) {}

void PolicySlots::publish(const std::shared_ptr<const Config>& config, PolicyLabels& labels) {
  auto set = std::make_unique<PolicySet>(config);
  auto array = array_ ? std::make_unique<std::vector<CompiledPolicy>>(*array_)
                      : std::make_unique<std::vector<CompiledPolicy>>();
  std::vector<State> state = state_;
  for (State& st : state) {
    if (st.use == Use::kCurrent) st.use = Use::kRetiring;
  }
  const std::uint64_t safe = Epoch::safe_epoch();
  // The candidates, lowest slot first: retiring slots by their policy's name, and the free
  // ones (a look per policy, not a walk over every slot: 10,000 policies made that 10^8).
  std::unordered_map<std::string, std::vector<std::size_t>> retiring_by_name;
  std::vector<std::size_t> free_slots;
  for (std::size_t i = 0; i < state.size(); ++i) {
    if (state[i].use == Use::kRetiring) {
      retiring_by_name[(*array)[i].spec->name].push_back(i);
    } else if (state[i].use == Use::kFree && state[i].freed_epoch <= safe) {
      free_slots.push_back(i);
    }
  }
  std::size_t next_free = 0;
  for (const ResolvedPolicy& p : config->resolved_policies()) {
    CompiledPolicy c = compile(p, *config, labels);
    std::size_t slot = state.size();
    if (auto it = retiring_by_name.find(p.name); it != retiring_by_name.end()) {
      for (std::size_t i : it->second) {
        if (state[i].use == Use::kRetiring && *(*array)[i].spec == p) {
          slot = i;
          break;
        }
      }
    }
    if (slot == state.size() && next_free < free_slots.size()) slot = free_slots[next_free++];
    if (slot == state.size()) {
      if (slot > 65535) {
        throw ConfigError("policies", "too many policies at once: keys still hold " +
                                          std::to_string(slot) + " earlier ones");
      }
      array->emplace_back();
      state.emplace_back();
    }
    (*array)[slot] = std::move(c);
    state[slot].use = Use::kCurrent;
    set->slot_of.push_back(static_cast<std::uint16_t>(slot));
  }
  slots_.store(array->data(), std::memory_order_release);
  set_.store(set.get(), std::memory_order_release);
  if (array_) retired_.retire([a = array_.release()] { delete a; });
  if (set_owned_) retired_.retire([p = set_owned_.release()] { delete p; });
  array_ = std::move(array);
  set_owned_ = std::move(set);
  state_ = std::move(state);
  retiring_ = std::any_of(state_.begin(), state_.end(),
                          [](const State& st) { return st.use == Use::kRetiring; });
}

void PolicySlots::free_retiring() {
  const std::uint64_t freed = Epoch::advance();
  for (State& st : state_) {
    if (st.use == Use::kRetiring) st = State{Use::kFree, freed};
  }
  retiring_ = false;
}

}  // namespace tollgate::core
