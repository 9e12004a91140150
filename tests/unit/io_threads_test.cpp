// io_threads_test.cpp: sessions placed round robin, each context on a thread of its own.
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include "unsubrelay/common/io_threads.hpp"

namespace asio = boost::asio;
using unsubrelay::IoThreads;

namespace {

/// The thread that runs a handler posted to executor.
std::thread::id thread_of(const asio::any_io_executor& executor) {
  std::promise<std::thread::id> where;
  asio::post(executor, [&where] { where.set_value(std::this_thread::get_id()); });
  return where.get_future().get();
}

}  // namespace

TEST(IoThreads, EachContextRunsOnAThreadOfItsOwnRoundRobin) {
  asio::io_context main(1);
  auto guard = asio::make_work_guard(main);
  IoThreads threads(main, 3);
  threads.start();
  std::thread main_thread([&main] { main.run(); });

  std::vector<std::thread::id> seen;
  for (int i = 0; i < 6; ++i) seen.push_back(thread_of(threads.next()));
  EXPECT_EQ(seen[0], main_thread.get_id());  // the first session goes to the main context
  EXPECT_EQ(std::set<std::thread::id>(seen.begin(), seen.end()).size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(seen[i], seen[i + 3]) << "placement " << i << " is not round robin";
  for (const auto& id : seen) EXPECT_NE(id, std::this_thread::get_id());

  threads.stop();  // joins io-1 and io-2
  guard.reset();
  main.stop();
  main_thread.join();
}

TEST(IoThreads, OneThreadPlacesEverySessionOnTheMainContext) {
  asio::io_context main(1);
  IoThreads threads(main, 1);
  threads.start();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(threads.next() == asio::any_io_executor(main.get_executor()));
  threads.stop();
}

TEST(IoThreads, StopJoinsEvenWithWorkStillQueued) {
  asio::io_context main(1);
  IoThreads threads(main, 2);
  threads.start();
  threads.next();  // the main context's turn
  const auto other = threads.next();
  EXPECT_NE(thread_of(other), std::this_thread::get_id());
  threads.stop();
  threads.stop();  // twice is harmless (the destructor stops again)
}
