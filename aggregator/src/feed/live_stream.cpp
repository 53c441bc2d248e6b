#include "feed/live_stream.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <deque>
#include <vector>

namespace postwatch::aggregator {

namespace beast = boost::beast;
namespace asio = boost::asio;
namespace websocket = beast::websocket;

namespace {

template <class Stream>
class WsSession final : public LiveStream::Session, public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  WsSession(Stream&& stream, const std::shared_ptr<LiveStream>& hub)
      : ws_(std::move(stream)),
        hub_(hub),
        log_(hub->log()),
        id_(hub->next_id()),
        max_queue_(hub->options().max_queue),
        idle_timeout_(hub->options().idle_timeout) {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(ws_).socket().remote_endpoint(ec);
    peer_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void start(HttpRequest upgrade) {
    upgrade_ = std::move(upgrade);
    websocket::stream_base::timeout t;
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = idle_timeout_;
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "postwatch-aggregator"); }));
    ws_.read_message_max(4096);  // clients have nothing to say beyond control frames
    ws_.auto_fragment(false);    // one frame per message: simpler for every client
    ws_.async_accept(upgrade_, beast::bind_front_handler(&WsSession::on_accept, this->shared_from_this()));
  }

  void send(std::shared_ptr<const std::string> message) override {
    if (state_ != State::Open) return;
    if (queue_.size() >= max_queue_) return drop();
    queue_.push_back(std::move(message));
    if (!writing_) do_write();
  }

  void close() override {
    if (state_ != State::Open) return;
    state_ = State::Closing;
    if (!writing_) do_close();  // else after the write in progress
  }

 private:
  enum class State { Handshake, Open, Closing, Done };

  void on_accept(beast::error_code ec) {
    if (ec) {
      log_->info("stream client {}: handshake failed: {}", peer_, ec.message());
      state_ = State::Done;
      return;
    }
    state_ = State::Open;
    upgrade_ = {};
    log_->info("stream client {} connected", peer_);
    if (auto hub = hub_.lock()) hub->on_open(id_, this->shared_from_this());  // queues the snapshot
    do_read();
  }

  void do_read() { ws_.async_read(rbuf_, beast::bind_front_handler(&WsSession::on_read, this->shared_from_this())); }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) {
      if (ec == websocket::error::closed)
        finish("closed");
      else if (ec == beast::error::timeout)
        finish("no answer to pings");
      else
        finish(ec.message());
      return;
    }
    rbuf_.consume(rbuf_.size());  // messages from clients are ignored
    do_read();
  }

  void do_write() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(asio::buffer(*queue_.front()),
                    beast::bind_front_handler(&WsSession::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    writing_ = false;
    if (ec) return finish("write failed: " + ec.message());
    if (!queue_.empty()) queue_.pop_front();
    if (state_ == State::Closing) return do_close();
    if (state_ == State::Open && !queue_.empty()) do_write();
  }

  void do_close() {
    queue_.clear();
    ws_.async_close(websocket::close_reason(websocket::close_code::going_away, "aggregator shutting down"),
                    [self = this->shared_from_this()](beast::error_code ec) {
                      // The read loop ends with `closed` when the client answers; this covers the rest.
                      if (ec) self->finish("close: " + ec.message());
                    });
  }

  void drop() {
    log_->warn("stream client {} dropped: more than {} messages behind", peer_, max_queue_);
    queue_.clear();
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);  // pending operations end with operation_aborted
    finish("dropped", true);
  }

  void finish(const std::string& why, bool dropped_slow = false) {
    if (finished_) return;
    finished_ = true;
    bool was_open = state_ != State::Handshake;
    state_ = State::Done;
    if (!was_open) return;
    log_->info("stream client {} disconnected ({})", peer_, why);
    if (auto hub = hub_.lock()) hub->on_finished(id_, dropped_slow);
  }

  websocket::stream<Stream> ws_;
  std::weak_ptr<LiveStream> hub_;
  std::shared_ptr<spdlog::logger> log_;
  std::uint64_t id_;
  std::size_t max_queue_;
  std::chrono::milliseconds idle_timeout_;
  std::string peer_;
  HttpRequest upgrade_;
  beast::flat_buffer rbuf_;
  std::deque<std::shared_ptr<const std::string>> queue_;
  State state_ = State::Handshake;
  bool writing_ = false;
  bool finished_ = false;
};

}  // namespace

LiveStream::LiveStream(std::shared_ptr<spdlog::logger> log, LiveStreamOptions options,
                       std::function<std::string()> snapshot)
    : log_(std::move(log)), options_(options), snapshot_(std::move(snapshot)) {}

LiveStream::~LiveStream() = default;

template <class Stream>
void LiveStream::start_session(Stream stream, HttpRequest upgrade) {
  auto session = std::make_shared<WsSession<Stream>>(std::move(stream), shared_from_this());
  session->start(std::move(upgrade));
}

void LiveStream::accept(PlainStream stream, HttpRequest upgrade) {
  start_session(std::move(stream), std::move(upgrade));
}
void LiveStream::accept(TlsStream stream, HttpRequest upgrade) { start_session(std::move(stream), std::move(upgrade)); }

void LiveStream::on_open(std::uint64_t id, const std::shared_ptr<Session>& session) {
  if (closing_) return session->close();
  sessions_[id] = session;
  stats_.connected_total += 1;
  session->send(std::make_shared<const std::string>(snapshot_ ? snapshot_() : std::string("{}")));
}

void LiveStream::on_finished(std::uint64_t id, bool dropped_slow) {
  sessions_.erase(id);
  if (dropped_slow) stats_.dropped_slow_total += 1;
}

void LiveStream::broadcast(std::string message) {
  stats_.messages_total += 1;
  if (sessions_.empty()) return;
  auto shared = std::make_shared<const std::string>(std::move(message));
  // A send may drop its session, which erases it from sessions_: iterate over a copy.
  std::vector<std::shared_ptr<Session>> targets;
  targets.reserve(sessions_.size());
  for (const auto& [_, weak] : sessions_)
    if (auto s = weak.lock()) targets.push_back(std::move(s));
  for (const auto& s : targets) s->send(shared);
}

void LiveStream::close_all() {
  closing_ = true;
  std::vector<std::shared_ptr<Session>> targets;
  for (const auto& [_, weak] : sessions_)
    if (auto s = weak.lock()) targets.push_back(std::move(s));
  for (const auto& s : targets) s->close();
}

LiveStreamStats LiveStream::stats() const {
  LiveStreamStats s = stats_;
  s.clients = sessions_.size();
  return s;
}

}  // namespace postwatch::aggregator
