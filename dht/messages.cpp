#include "dht/messages.hpp"

namespace p2psip::dht {

std::string_view op_name(Op op) {
  switch (op) {
    case Op::Join: return "join";
    case Op::Neighbors: return "neighbors";
    case Op::Notify: return "notify";
    case Op::Ping: return "ping";
    case Op::Leave: return "leave";
    case Op::Replicate: return "replicate";
    case Op::Route: return "route";
    case Op::Turn: return "turn";
  }
  return "ping";
}

std::optional<Op> op_from_name(std::string_view n) {
  for (Op op : {Op::Join, Op::Neighbors, Op::Notify, Op::Ping, Op::Leave, Op::Replicate, Op::Route, Op::Turn}) {
    if (op_name(op) == n) return op;
  }
  return std::nullopt;
}

std::string_view route_op_name(RouteOp op) {
  switch (op) {
    case RouteOp::Lookup: return "lookup";
    case RouteOp::Store: return "store";
    case RouteOp::Fetch: return "fetch";
    case RouteOp::Attach: return "attach";
    case RouteOp::Find: return "find";
  }
  return "lookup";
}

std::optional<RouteOp> route_op_from_name(std::string_view n) {
  for (RouteOp op : {RouteOp::Lookup, RouteOp::Store, RouteOp::Fetch, RouteOp::Attach, RouteOp::Find}) {
    if (route_op_name(op) == n) return op;
  }
  return std::nullopt;
}

}  // namespace p2psip::dht
