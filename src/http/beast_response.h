// A Beast response as the http library's Response: status, content type, the other headers
// with lower-case names, the body. Private to the http library (Fetch and ConnectionPool).
#pragma once

#include <boost/beast/http.hpp>
#include <string>
#include <utility>

#include "http/http.h"

namespace hafab::http::internal {

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
