#pragma once
// send() of a connector made on a shared event loop (SinkFactories::add_on_loop): the send
// begins on the loop, as send_async's must, and the calling thread waits for its result. The
// loop has to be running on another thread; on its own thread the wait would never end, so
// there it is a programming error (std::logic_error), not a delivery result.

#include <future>
#include <stdexcept>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "engine/runtime/sink.hpp"

namespace budstikke::runtime {

inline DeliveryResult send_on_loop(boost::asio::io_context& loop, Sink& sink,
                                   const DeliveryJob& job) {
  if (loop.get_executor().running_in_this_thread())
    throw std::logic_error(
        "send() called on the event loop its connector sends on: use send_async there");
  std::promise<DeliveryResult> result;
  auto got = result.get_future();
  boost::asio::post(loop, [&] {
    sink.send_async(job, [&result](DeliveryResult r) { result.set_value(std::move(r)); });
  });
  return got.get();
}

}  // namespace budstikke::runtime
