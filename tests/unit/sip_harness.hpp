// A recording environment and transaction user for driving the transaction layer by hand.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "node/sip/transaction.hpp"

namespace p2psip::test {

struct Sent {
  Endpoint to;
  std::string bytes;
  [[nodiscard]] sip::Message message() const { return sip::parse_datagram(bytes).value(); }
};

class RecordingEnvironment : public Environment {
 public:
  bool send(const Endpoint& to, std::string_view bytes) override {
    if (fail_sends) return false;
    sent.push_back({to, std::string(bytes)});
    return true;
  }
  std::uint64_t random() override { return ++counter * 0x9e3779b97f4a7c15ull; }
  std::uint64_t secure_random() override { return random(); }
  std::vector<Sent> sent;
  bool fail_sends = false;
  std::uint64_t counter = 0;
};

struct Event {
  std::string kind;  // request, ack, response, timeout, transport_error, stray
  sip::TransactionId id = 0;
  int status = 0;
  std::string method;
};

class RecordingUser : public sip::TransactionUser {
 public:
  void on_request(sip::TransactionId id, const sip::Message& r, const Endpoint&, Instant) override {
    events.push_back({"request", id, 0, std::string(r.method())});
    last_request = r;
  }
  void on_ack(sip::TransactionId id, const sip::Message&, const Endpoint&, Instant) override {
    events.push_back({"ack", id, 0, "ACK"});
  }
  void on_response(sip::TransactionId id, const sip::Message& r, Instant) override {
    events.push_back({"response", id, r.status(), {}});
  }
  void on_timeout(sip::TransactionId id, Instant) override { events.push_back({"timeout", id, 0, {}}); }
  void on_transport_error(sip::TransactionId id, Instant) override { events.push_back({"transport_error", id, 0, {}}); }
  void on_stray_response(const sip::Message& r, const Endpoint&, Instant) override {
    events.push_back({"stray", 0, r.status(), {}});
  }
  std::vector<Event> events;
  sip::Message last_request;
};

inline Endpoint udp(const char* ip, std::uint16_t port) {
  return Endpoint{Transport::Udp, *IpAddress::parse(ip), port};
}
inline Endpoint tcp(const char* ip, std::uint16_t port) {
  return Endpoint{Transport::Tcp, *IpAddress::parse(ip), port};
}

}  // namespace p2psip::test
