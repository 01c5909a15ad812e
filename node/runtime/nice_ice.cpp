#include "node/runtime/nice_ice.hpp"

#include <nice/agent.h>

#include <cstring>

namespace p2psip::runtime {
namespace {

std::optional<nat::CandidateType> from_nice(NiceCandidateType t) {
  switch (t) {
    case NICE_CANDIDATE_TYPE_HOST: return nat::CandidateType::Host;
    case NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE: return nat::CandidateType::ServerReflexive;
    case NICE_CANDIDATE_TYPE_PEER_REFLEXIVE: return nat::CandidateType::PeerReflexive;
    case NICE_CANDIDATE_TYPE_RELAYED: return nat::CandidateType::Relayed;
  }
  return std::nullopt;
}

NiceCandidateType to_nice(nat::CandidateType t) {
  switch (t) {
    case nat::CandidateType::Host: return NICE_CANDIDATE_TYPE_HOST;
    case nat::CandidateType::ServerReflexive: return NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE;
    case nat::CandidateType::PeerReflexive: return NICE_CANDIDATE_TYPE_PEER_REFLEXIVE;
    case nat::CandidateType::Relayed: return NICE_CANDIDATE_TYPE_RELAYED;
  }
  return NICE_CANDIDATE_TYPE_HOST;
}

std::optional<Endpoint> endpoint_of(const NiceAddress& a) {
  if (!nice_address_is_valid(&a)) return std::nullopt;
  char text[NICE_ADDRESS_STRING_LEN] = {};
  nice_address_to_string(&a, text);
  auto ip = IpAddress::parse(text);
  if (!ip) return std::nullopt;
  return Endpoint{Transport::Udp, *ip, static_cast<std::uint16_t>(nice_address_get_port(&a))};
}

bool set_address(NiceAddress& a, const Endpoint& e) {
  nice_address_init(&a);
  if (!nice_address_set_from_string(&a, e.ip.to_string().c_str())) return false;
  nice_address_set_port(&a, e.port);
  return true;
}

}  // namespace

struct NiceIce::Glib {
  GMainContext* ctx = nullptr;
  GMainLoop* loop = nullptr;
};

/// One session's agent, owned by the GLib thread (created, driven and freed there). The table in
/// NiceIce holds it so that send() on the libuv thread can reach it; libnice's send is thread-safe.
struct NiceIce::Agent {
  NiceIce* owner = nullptr;
  nat::IceSessionId id = 0;
  NiceAgent* agent = nullptr;
  guint stream = 0;
  /// The agent as send() may use it from the libuv thread: set once it is ready, cleared before it
  /// is freed, under `send_mu`, so that no send runs into a freed agent.
  std::mutex send_mu;
  NiceAgent* ready = nullptr;

  static void on_candidate(NiceAgent*, NiceCandidate* c, gpointer data) {
    auto* self = static_cast<Agent*>(data);
    if (c->transport != NICE_CANDIDATE_TRANSPORT_UDP) return;
    const auto type = from_nice(c->type);
    const auto addr = endpoint_of(c->addr);
    if (!type || !addr) return;
    Event e;
    e.id = self->id;
    e.kind = Event::Kind::Candidate;
    e.candidate.foundation = c->foundation;
    e.candidate.component = static_cast<std::uint16_t>(c->component_id);
    e.candidate.priority = c->priority;
    e.candidate.address = *addr;
    e.candidate.type = *type;
    if (*type != nat::CandidateType::Host) e.candidate.related = endpoint_of(c->base_addr);
    self->owner->post(std::move(e));
  }
  static void on_gathering_done(NiceAgent*, guint, gpointer data) {
    auto* self = static_cast<Agent*>(data);
    self->owner->post(Event{self->id, Event::Kind::GatheringDone, {}, {}, {}, {}, {}});
  }
  static void on_state(NiceAgent*, guint, guint, guint state, gpointer data) {
    auto* self = static_cast<Agent*>(data);
    if (state == NICE_COMPONENT_STATE_FAILED) {
      self->owner->post(Event{self->id, Event::Kind::Failed, {}, {}, {}, {}, {}});
    }
  }
  static void on_selected(NiceAgent*, guint, guint, NiceCandidate* local, NiceCandidate* remote, gpointer data) {
    auto* self = static_cast<Agent*>(data);
    Event e;
    e.id = self->id;
    e.kind = Event::Kind::Connected;
    e.local = from_nice(local->type).value_or(nat::CandidateType::Host);
    e.remote = from_nice(remote->type).value_or(nat::CandidateType::Host);
    self->owner->post(std::move(e));
  }
  static void on_recv(NiceAgent*, guint, guint, guint len, gchar* buf, gpointer data) {
    auto* self = static_cast<Agent*>(data);
    Event e;
    e.id = self->id;
    e.kind = Event::Kind::Datagram;
    e.bytes.assign(buf, len);
    self->owner->post(std::move(e));
  }

  /// On the GLib thread: the agent, its stream, its servers; gathering starts.
  bool start(GMainContext* ctx, const NiceConfig& cfg, bool controlling) {
    // Aggressive nomination (libnice's default): every check of the controlling agent nominates,
    // so a better pair that succeeds later (a hole punched on a retransmission) replaces the first
    // one selected (new-selected-pair again). libnice's regular nomination settles on the first
    // pair once two are valid and never moves: a relayed pair where a direct one works.
    agent = nice_agent_new_full(ctx, NICE_COMPATIBILITY_RFC5245, NICE_AGENT_OPTION_ICE_TRICKLE);
    if (agent == nullptr) return false;
    // Properties before gathering, on this thread (NAT-NOTES §3: set from another they deadlocked).
    // keepalive-conncheck off: keep-alives are Binding indications every 25 s (libnice's fixed Tr),
    // not checks answered every few seconds, which cost 325 KB/h per idle link in the lab
    // (bench/natlab_ice_keepalive.sh). A peer gone silent is found by the overlay's hop time-outs,
    // and the link logic closes a link nothing uses.
    g_object_set(G_OBJECT(agent), "controlling-mode", controlling ? TRUE : FALSE, "ice-tcp", FALSE, "upnp", FALSE,
                 "keepalive-conncheck", FALSE, nullptr);
    if (cfg.stun) {
      g_object_set(G_OBJECT(agent), "stun-server", cfg.stun->ip.to_string().c_str(), "stun-server-port",
                   static_cast<guint>(cfg.stun->port), nullptr);
    }
    for (const auto& ip : cfg.local_addresses) {
      NiceAddress a;
      if (set_address(a, Endpoint{Transport::Udp, ip, 0})) nice_agent_add_local_address(agent, &a);
    }
    g_signal_connect(G_OBJECT(agent), "new-candidate-full", G_CALLBACK(on_candidate), this);
    g_signal_connect(G_OBJECT(agent), "candidate-gathering-done", G_CALLBACK(on_gathering_done), this);
    g_signal_connect(G_OBJECT(agent), "component-state-changed", G_CALLBACK(on_state), this);
    g_signal_connect(G_OBJECT(agent), "new-selected-pair-full", G_CALLBACK(on_selected), this);
    stream = nice_agent_add_stream(agent, 1);
    if (stream == 0) return false;
    if (cfg.port_min != 0) nice_agent_set_port_range(agent, stream, 1, cfg.port_min, cfg.port_max);
    if (cfg.turn) {
      nice_agent_set_relay_info(agent, stream, 1, cfg.turn->server.ip.to_string().c_str(), cfg.turn->server.port,
                                cfg.turn->user.c_str(), cfg.turn->password.c_str(),
                                cfg.turn->tcp ? NICE_RELAY_TYPE_TURN_TCP : NICE_RELAY_TYPE_TURN_UDP);
    }
    nice_agent_attach_recv(agent, stream, 1, ctx, on_recv, this);
    gchar* ufrag = nullptr;
    gchar* pwd = nullptr;
    if (!nice_agent_get_local_credentials(agent, stream, &ufrag, &pwd)) return false;
    Event e;
    e.id = id;
    e.kind = Event::Kind::Credentials;
    e.credentials = {ufrag, pwd};
    g_free(ufrag);
    g_free(pwd);
    owner->post(std::move(e));
    if (nice_agent_gather_candidates(agent, stream) == FALSE) return false;
    std::lock_guard lock(send_mu);
    ready = agent;
    return true;
  }

  void set_remote(const nat::IceDescription& d) {
    if (agent == nullptr) return;
    nice_agent_set_remote_credentials(agent, stream, d.credentials.ufrag.c_str(), d.credentials.pwd.c_str());
    GSList* list = nullptr;
    for (const auto& c : d.candidates) {
      if (c.component != 1) continue;
      NiceCandidate* nc = nice_candidate_new(to_nice(c.type));
      nc->transport = NICE_CANDIDATE_TRANSPORT_UDP;
      nc->stream_id = stream;
      nc->component_id = 1;
      nc->priority = c.priority;
      std::strncpy(nc->foundation, c.foundation.c_str(), NICE_CANDIDATE_MAX_FOUNDATION - 1);
      if (!set_address(nc->addr, c.address)) {
        nice_candidate_free(nc);
        continue;
      }
      if (c.related) set_address(nc->base_addr, *c.related);
      list = g_slist_append(list, nc);
    }
    if (list != nullptr) nice_agent_set_remote_candidates(agent, stream, 1, list);
    g_slist_free_full(list, reinterpret_cast<GDestroyNotify>(nice_candidate_free));
    // Nothing more will come: an Attach carries all the candidates its side sends.
    nice_agent_peer_candidate_gathering_done(agent, stream);
  }

  void free_agent(GMainContext* ctx) {
    if (agent == nullptr) return;
    {
      std::lock_guard lock(send_mu);
      ready = nullptr;
    }
    if (stream != 0) nice_agent_attach_recv(agent, stream, 1, ctx, nullptr, nullptr);
    g_signal_handlers_disconnect_by_data(G_OBJECT(agent), this);
    // close_async gives TURN allocations back; the agent is released when it is done.
    nice_agent_close_async(agent, nullptr, nullptr);
    g_object_unref(agent);
    agent = nullptr;
  }
};

NiceIce::NiceIce(uv_loop_t* loop, NiceConfig cfg, IceEvents& events)
    : cfg_(std::move(cfg)), events_(events), glib_(std::make_unique<Glib>()) {
  uv_async_init(loop, &async_, on_async);
  async_.data = this;
  async_open_ = true;
  glib_->ctx = g_main_context_new();
  glib_->loop = g_main_loop_new(glib_->ctx, FALSE);
  thread_ = std::thread([g = glib_.get()] {
    g_main_context_push_thread_default(g->ctx);
    g_main_loop_run(g->loop);
    g_main_context_pop_thread_default(g->ctx);
  });
}

NiceIce::~NiceIce() {
  stop();
  if (glib_->loop != nullptr) g_main_loop_unref(glib_->loop);
  if (glib_->ctx != nullptr) g_main_context_unref(glib_->ctx);
}

void NiceIce::run_on_glib(std::function<void()> f) {
  {
    std::lock_guard lock(mu_);
    commands_.push_back(std::move(f));
  }
  g_main_context_invoke(
      glib_->ctx,
      [](gpointer data) -> gboolean {
        static_cast<NiceIce*>(data)->drain_commands();
        return G_SOURCE_REMOVE;
      },
      this);
}

void NiceIce::drain_commands() {
  for (;;) {
    std::function<void()> f;
    {
      std::lock_guard lock(mu_);
      if (commands_.empty()) return;
      f = std::move(commands_.front());
      commands_.pop_front();
    }
    f();
  }
}

void NiceIce::post(Event e) {
  {
    std::lock_guard lock(mu_);
    events_queue_.push_back(std::move(e));
  }
  uv_async_send(&async_);
}

void NiceIce::on_async(uv_async_t* a) {
  auto* self = static_cast<NiceIce*>(a->data);
  std::deque<Event> batch;
  {
    std::lock_guard lock(self->mu_);
    batch.swap(self->events_queue_);
  }
  for (auto& e : batch) {
    {
      std::lock_guard lock(self->mu_);
      if (!self->agents_.count(e.id)) continue;  // closed meanwhile: its late reports are not wanted
    }
    switch (e.kind) {
      case Event::Kind::Credentials: self->events_.on_credentials(e.id, e.credentials); break;
      case Event::Kind::Candidate: self->events_.on_candidate(e.id, e.candidate); break;
      case Event::Kind::GatheringDone: self->events_.on_gathering_done(e.id); break;
      case Event::Kind::Connected: self->events_.on_connected(e.id, e.local, e.remote); break;
      case Event::Kind::Failed: self->events_.on_failed(e.id); break;
      case Event::Kind::Datagram: self->events_.on_datagram(e.id, e.bytes); break;
    }
  }
}

bool NiceIce::open(nat::IceSessionId id, bool controlling) {
  if (!async_open_) return false;
  auto a = std::make_shared<Agent>();
  a->owner = this;
  a->id = id;
  {
    std::lock_guard lock(mu_);
    if (agents_.count(id)) return false;
    agents_.emplace(id, a);
  }
  NiceConfig cfg = cfg_;
  if (cfg_.stun && !cfg_.more_stun.empty()) {
    const std::size_t n = next_stun_++ % (cfg_.more_stun.size() + 1);
    if (n > 0) cfg.stun = cfg_.more_stun[n - 1];
  }
  run_on_glib([this, a, controlling, cfg = std::move(cfg)] {
    if (!a->start(glib_->ctx, cfg, controlling)) post(Event{a->id, Event::Kind::Failed, {}, {}, {}, {}, {}});
  });
  return true;
}

void NiceIce::remote(nat::IceSessionId id, const nat::IceDescription& d) {
  std::shared_ptr<Agent> a;
  {
    std::lock_guard lock(mu_);
    auto it = agents_.find(id);
    if (it == agents_.end()) return;
    a = it->second;
  }
  run_on_glib([a, d] { a->set_remote(d); });
}

bool NiceIce::send(nat::IceSessionId id, std::string_view bytes) {
  std::shared_ptr<Agent> a;
  {
    std::lock_guard lock(mu_);
    auto it = agents_.find(id);
    if (it == agents_.end()) return false;
    a = it->second;
  }
  // The agent is made on the GLib thread: until then (or once it is freed) nothing goes.
  std::lock_guard lock(a->send_mu);
  if (a->ready == nullptr) return false;
  return nice_agent_send(a->ready, a->stream, 1, static_cast<guint>(bytes.size()), bytes.data()) >= 0;
}

void NiceIce::close(nat::IceSessionId id) {
  std::shared_ptr<Agent> a;
  {
    std::lock_guard lock(mu_);
    auto it = agents_.find(id);
    if (it == agents_.end()) return;
    a = std::move(it->second);
    agents_.erase(it);
  }
  run_on_glib([this, a] { a->free_agent(glib_->ctx); });
}

std::size_t NiceIce::agents() const {
  std::lock_guard lock(mu_);
  return agents_.size();
}

void NiceIce::stop() {
  if (!thread_.joinable()) return;
  std::vector<std::shared_ptr<Agent>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, a] : agents_) all.push_back(a);
    agents_.clear();
  }
  run_on_glib([this, all] {
    for (const auto& a : all) a->free_agent(glib_->ctx);
    g_main_loop_quit(glib_->loop);
  });
  thread_.join();
  if (async_open_) {
    async_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  }
}

}  // namespace p2psip::runtime
