#include "uplink_relay.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <stdexcept>
#include <thread>
#include <vector>

namespace postwatch::sim {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// One relayed connection: agent ⇄ broker, a buffer each way.
struct Session : std::enable_shared_from_this<Session> {
  explicit Session(asio::io_context& io, tcp::socket agent_side) : agent(std::move(agent_side)), broker(io) {}

  void start(const tcp::resolver::results_type& endpoints) {
    asio::async_connect(broker, endpoints, [self = shared_from_this()](boost::system::error_code ec, const auto&) {
      if (ec) return self->close();
      self->pump(self->agent, self->broker, self->upstream);
      self->pump(self->broker, self->agent, self->downstream);
    });
  }

  // Either side closing or failing ends the whole connection, as a broken link would.
  void close() {
    boost::system::error_code ignored;
    agent.close(ignored);
    broker.close(ignored);
  }

  void pump(tcp::socket& from, tcp::socket& to, std::array<char, 16384>& buf) {
    from.async_read_some(asio::buffer(buf),
                         [self = shared_from_this(), &from, &to, &buf](boost::system::error_code ec, std::size_t n) {
                           if (ec) return self->close();
                           asio::async_write(to, asio::buffer(buf.data(), n),
                                             [self, &from, &to, &buf](boost::system::error_code ec2, std::size_t) {
                                               if (ec2) return self->close();
                                               self->pump(from, to, buf);
                                             });
                         });
  }

  tcp::socket agent, broker;
  std::array<char, 16384> upstream{}, downstream{};
};

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// A link's port stays bound by `keeper`, which never listens: while the listening
// acceptor is closed (the link is down) a connect is refused, and the kernel cannot
// hand the port out to another socket, so listening again always succeeds.
struct Link {
  explicit Link(asio::io_context& io) : keeper(io), acceptor(io) {
    tcp::endpoint any_port(asio::ip::make_address("127.0.0.1"), 0);
    keeper.open(any_port.protocol());
    keeper.set_option(ReusePort(true));
    keeper.bind(any_port);
    port = keeper.local_endpoint().port();
  }
  // Opens the listening acceptor on the kept port; on failure `ec` says why.
  void listen(boost::system::error_code& ec) {
    tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(ReusePort(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    boost::system::error_code ignored;
    if (ec) acceptor.close(ignored);
  }
  tcp::socket keeper;
  tcp::acceptor acceptor;
  unsigned short port = 0;
  int downs = 0;  // cuts and stop_accepting() not yet undone; io thread only
  std::vector<std::weak_ptr<Session>> sessions;
};

// "tcp://host:port" → host and port (1883 when none).
std::pair<std::string, std::string> host_and_port(const std::string& uri) {
  std::string rest;
  for (const char* scheme : {"tcp://", "mqtt://"})
    if (uri.rfind(scheme, 0) == 0) rest = uri.substr(std::string(scheme).size());
  if (rest.empty())
    throw std::invalid_argument("broker " + uri +
                                ": cutting uplinks needs a tcp:// or mqtt:// broker (the relay carries plain TCP)");
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, "1883"};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

}  // namespace

struct UplinkRelay::Impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  tcp::resolver::results_type broker;
  std::vector<std::unique_ptr<Link>> links;
  std::shared_ptr<spdlog::logger> log;
  std::thread thread;

  void accept(Link& link) {
    link.acceptor.async_accept([this, &link](boost::system::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !link.acceptor.is_open()) return;
      if (!ec) {
        auto session = std::make_shared<Session>(io, std::move(socket));
        std::erase_if(link.sessions, [](const auto& w) { return w.expired(); });
        link.sessions.push_back(session);
        session->start(broker);
      }
      accept(link);
    });
  }

  // While a link is down nobody listens on its port, so the agent's connect is refused
  // outright. (A connection accepted and then closed mid-handshake is a harsher test than
  // the agent survives today: Paho can leave its connect token unanswered, and the agent
  // waits on that token without a timeout.)
  void take_down(Link& link, bool drop_connections) {
    if (link.downs++ == 0) {
      boost::system::error_code ignored;
      link.acceptor.close(ignored);
    }
    if (!drop_connections) return;
    for (auto& w : link.sessions)
      if (auto s = w.lock()) s->close();
    link.sessions.clear();
  }

  void restore(Link& link) {
    if (link.downs == 0 || --link.downs > 0) return;
    boost::system::error_code ec;
    link.listen(ec);
    if (ec) {
      log->error("uplink relay: cannot listen on 127.0.0.1:{} again ({}); that agent stays cut off", link.port,
                 ec.message());
      return;
    }
    accept(link);
  }
};

UplinkRelay::UplinkRelay(const std::string& broker_uri, std::size_t links, std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<Impl>()) {
  impl_->log = std::move(log);
  auto [host, port] = host_and_port(broker_uri);
  try {
    impl_->broker = tcp::resolver(impl_->io).resolve(host, port);
  } catch (const boost::system::system_error& e) {
    throw std::invalid_argument("broker " + broker_uri + ": cannot resolve " + host + ": " + e.what());
  }
  for (std::size_t i = 0; i < links; ++i) {
    auto link = std::make_unique<Link>(impl_->io);
    boost::system::error_code ec;
    link->listen(ec);
    if (ec)
      throw std::runtime_error("uplink relay: cannot listen on 127.0.0.1:" + std::to_string(link->port) + ": " +
                               ec.message());
    impl_->accept(*link);
    impl_->links.push_back(std::move(link));
  }
  impl_->thread = std::thread([this] { impl_->io.run(); });
  impl_->log->info("uplink relay: {} link(s) on 127.0.0.1:{}-{} to {}", links, links ? impl_->links.front()->port : 0,
                   links ? impl_->links.back()->port : 0, broker_uri);
}

UplinkRelay::~UplinkRelay() {
  asio::post(impl_->io, [this] {
    for (auto& link : impl_->links) {
      boost::system::error_code ignored;
      link->acceptor.close(ignored);
      for (auto& w : link->sessions)
        if (auto s = w.lock()) s->close();
    }
    impl_->work.reset();
  });
  impl_->thread.join();
}

std::string UplinkRelay::uri(std::size_t link) const {
  return "tcp://127.0.0.1:" + std::to_string(impl_->links.at(link)->port);
}

void UplinkRelay::cut(std::size_t link) {
  Link& l = *impl_->links.at(link);
  asio::post(impl_->io, [this, &l] { impl_->take_down(l, true); });
}

void UplinkRelay::stop_accepting(std::size_t link) {
  Link& l = *impl_->links.at(link);
  asio::post(impl_->io, [this, &l] { impl_->take_down(l, false); });
}

void UplinkRelay::restore(std::size_t link) {
  Link& l = *impl_->links.at(link);
  asio::post(impl_->io, [this, &l] { impl_->restore(l); });
}

}  // namespace postwatch::sim
