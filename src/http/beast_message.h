// Between Beast's messages and the http library's: the request a client sends, and a Beast
// response as a Response. Private to the http library (Fetch and ConnectionPool).
#pragma once

#include <boost/beast/http.hpp>
#include <cstdint>
#include <string>
#include <utility>

#include "http/http.h"

namespace hafab::http::internal {

// The largest response body a client reads (Fetch and ConnectionPool).
inline constexpr uint64_t kResponseBodyLimit = 256u << 20;

// A client's request: HTTP/1.1, Host `host`, a JSON content type when there is a body, then
// `headers` (which may override those), keep-alive as asked, the body's length set.
inline boost::beast::http::request<boost::beast::http::string_body> MakeRequest(
    const std::string& method, const std::string& target, const std::string& host, std::string body,
    const Headers& headers, bool keep_alive) {
  namespace bhttp = boost::beast::http;
  bhttp::request<bhttp::string_body> request;
  request.method_string(method);
  request.target(target);
  request.version(11);
  request.set(bhttp::field::host, host);
  request.set(bhttp::field::user_agent, "hafab");
  if (!body.empty()) request.set(bhttp::field::content_type, "application/json");
  for (const auto& [name, value] : headers) request.set(name, value);
  request.keep_alive(keep_alive);
  request.body() = std::move(body);
  request.prepare_payload();
  return request;
}

inline Response FromBeast(boost::beast::http::response<boost::beast::http::string_body>&& message) {
  namespace bhttp = boost::beast::http;
  Response response;
  response.status = static_cast<int>(message.result_int());
  response.content_type = std::string(message[bhttp::field::content_type]);
  for (const auto& field : message) {
    if (field.name() == bhttp::field::content_type) continue;
    std::string name(field.name_string());
    for (char& c : name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    response.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  response.body = std::move(message.body());
  return response;
}

}  // namespace hafab::http::internal
