// Signatures and enrolment (docs/security.md): their rows of the figure table (feed/figures.hpp).
#include "feed/figures.hpp"
#include "trust/agent_trust.hpp"

namespace postwatch::aggregator {

void add_trust_figures(FigureRegistry& r, const BatchIngest& ingest, const AgentPresence& presence,
                       const AgentTrust* trust) {
  using L = MetricsText;
  r.family("postwatch_batches_signed_total", MetricKind::Counter,
           "Event batches accepted with a verified agent signature.")
      .figure("batches_signed", "", [&ingest] { return FigureValue(ingest.counters().batches_signed); });
  auto refused = r.family("postwatch_messages_refused_signature_total", MetricKind::Counter,
                          "Batches and agent states refused by their signature, by message and reason "
                          "(docs/security.md).");
  for (std::size_t i = 0; i < kSignatureRefusals; ++i) {
    const auto reason = std::string(to_string(refusal_at(i)));
    refused
        .figure("batches_refused_signature/" + reason, L::label("message", "batch") + "," + L::label("reason", reason),
                [&ingest, i] { return FigureValue(ingest.counters().batches_refused_signature[i]); })
        .figure("agent_states_refused_signature/" + reason,
                L::label("message", "state") + "," + L::label("reason", reason),
                [&presence, i] { return FigureValue(presence.refused_signature()[i]); });
  }
  if (!trust) return;
  r.family("postwatch_agents_enrolled", MetricKind::Gauge, "Agents with a signing key in force.")
      .figure("agents_enrolled", "", [trust] { return FigureValue(trust->keys().enrolled_agents()); });
  auto counter = [trust](std::uint64_t TrustCounters::*f) {
    return [trust, f] { return FigureValue(trust->counters().*f); };
  };
  r.family("postwatch_enrolments_total", MetricKind::Counter, "Enrolment requests answered, by outcome.")
      .figure("enrolments_accepted", L::label("outcome", "accepted"), counter(&TrustCounters::enrolments_accepted))
      .figure("enrolments_refused", L::label("outcome", "refused"), counter(&TrustCounters::enrolments_refused));
  r.family("postwatch_agent_keys_rotated_total", MetricKind::Counter,
           "Agent keys rotated (the new key endorsed by the old).")
      .figure("keys_rotated", "", counter(&TrustCounters::keys_rotated));
  r.family("postwatch_aggregator_key_switches_total", MetricKind::Counter,
           "Times the aggregator switched to its prepared next signing key.")
      .figure("aggregator_key_switches", "", counter(&TrustCounters::aggregator_key_switches));
}

}  // namespace postwatch::aggregator
