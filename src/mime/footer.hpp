// footer.hpp: the visible unsubscribe footer of campaign mail without a
// placeholder (unsubscribe.body_link: footer), private to src/mime.
//
// The footer goes inside the text parts: the first text/plain and the first
// text/html that are not attachments and whose text we can edit. When a
// reader could show the message without one of those (no such part, or the
// alternative it picks is not one), the message gets a new text/plain part,
// always as a later child of a multipart/mixed: inside the top level when that
// is a multipart/mixed, else in a new multipart/mixed that wraps the whole
// body. A footer part inside a multipart/alternative would replace the
// newsletter (a reader shows one alternative); inside a multipart/related no
// reader shows it. Never after the closing delimiter (the epilogue) either.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "unsubrelay/mime/scanner.hpp"

namespace unsubrelay::mime::footer {

/// The text before and after the URL.
struct Around {
  std::string before;
  std::string after;
};

/// Where an HTML footer goes: before </body>, else at the end.
std::size_t html_at(std::string_view text);
/// The footer at the end of a text/plain part's text.
Around plain(std::string_view text);
Around html();

/// How a message without an editable text part gets its footer part.
enum class NewPart { none, insert, wrap };

/// Whether a reader showing part as the message's body shows a part for
/// which carries(part) is true: one alternative of a multipart/alternative
/// (so all that are text/plain, text/html or multipart must carry it), the
/// first part of a multipart/related, any part of other multiparts; never an
/// attachment or an attached message.
bool shown(const Part& part, const std::function<bool(const Part&)>& carries);

/// insert: the root is a multipart/mixed whose parts we found; wrap: anything else.
NewPart new_part_for(const Part& root);

/// A boundary that occurs nowhere in the message ("=_unsubrelay_footer_0" unless it does).
std::string unique_boundary(std::string_view message);

/// insert: the new part's text around the URL, placed at root.children.back().end.
/// When the root had no closing delimiter, this one closes it.
Around inserted_part(const Part& root);

/// wrap: the Content-Type field of the new top level, and the new footer part.
std::string wrap_content_type(const std::string& boundary);
Around wrapped_part(const std::string& boundary);
/// wrap: the closing delimiter a wrapped multipart lacked ("" when it had one).
std::string closing_of_wrapped(const Part& root);

/// True when a Content-* field describes the root's body (it moves into the first part when wrapping).
bool content_field(std::string_view name);

}  // namespace unsubrelay::mime::footer
