#include "ir/Parser.h"

#include "ir/Graph.h"
#include "ir/Verifier.h"
#include "runtime/Error.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <unordered_map>

namespace kiln {

namespace {

enum class Tok {
  End, Percent, At, Ident, Int, Float, String,
  LParen, RParen, LBrace, RBrace, LBracket, RBracket, Comma, Colon, Equal, Arrow
};

std::string tokName(Tok t) {
  switch (t) {
  case Tok::End: return "end of file";
  case Tok::Percent: return "a %value";
  case Tok::At: return "a @name";
  case Tok::Ident: return "an identifier";
  case Tok::Int: return "an integer";
  case Tok::Float: return "a number";
  case Tok::String: return "a string";
  case Tok::LParen: return "'('";
  case Tok::RParen: return "')'";
  case Tok::LBrace: return "'{'";
  case Tok::RBrace: return "'}'";
  case Tok::LBracket: return "'['";
  case Tok::RBracket: return "']'";
  case Tok::Comma: return "','";
  case Tok::Colon: return "':'";
  case Tok::Equal: return "'='";
  case Tok::Arrow: return "'->'";
  }
  return "?";
}

struct Token {
  Tok kind = Tok::End;
  std::string text; // identifier / name without sigil / string contents / number text
  int line = 0, col = 0;
};

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

class Lexer {
public:
  Lexer(const std::string &text, std::string file, int firstLine)
      : text_(text), file_(std::move(file)), line_(firstLine) {}

  Token next() {
    skipSpaceAndComments();
    Token t;
    t.line = line_;
    t.col = col_;
    if (pos_ >= text_.size())
      return t;
    char c = text_[pos_];
    auto single = [&](Tok kind) {
      advance();
      t.kind = kind;
      return t;
    };
    switch (c) {
    case '(': return single(Tok::LParen);
    case ')': return single(Tok::RParen);
    case '{': return single(Tok::LBrace);
    case '}': return single(Tok::RBrace);
    case '[': return single(Tok::LBracket);
    case ']': return single(Tok::RBracket);
    case ',': return single(Tok::Comma);
    case ':': return single(Tok::Colon);
    case '=': return single(Tok::Equal);
    case '"': return lexString(t);
    case '%':
    case '@': {
      advance();
      t.kind = c == '%' ? Tok::Percent : Tok::At;
      while (pos_ < text_.size() && isNameChar(text_[pos_]))
        t.text += advance();
      if (t.text.empty())
        fail(t, std::string("expected a name after '") + c + "'");
      // `%3#1`: result 1 of the multi-output node %3.
      if (c == '%' && pos_ + 1 < text_.size() && text_[pos_] == '#' &&
          std::isdigit(static_cast<unsigned char>(text_[pos_ + 1])))
        do
          t.text += advance();
        while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])));
      return t;
    }
    default: break;
    }
    if (c == '-' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '>') {
      advance();
      advance();
      t.kind = Tok::Arrow;
      return t;
    }
    if (c == '-' || c == '+' || (c >= '0' && c <= '9'))
      return lexNumber(t);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
      while (pos_ < text_.size() && isNameChar(text_[pos_]))
        t.text += advance();
      t.kind = Tok::Ident;
      return t;
    }
    if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) >= 127)
      fail(t, "unexpected byte 0x" + hex(static_cast<unsigned char>(c)));
    fail(t, std::string("unexpected character '") + c + "'");
  }

  [[noreturn]] void fail(const Token &at, const std::string &message) const {
    throwError(file_ + ":" + std::to_string(at.line) + ":" + std::to_string(at.col), message);
  }

private:
  static std::string hex(unsigned v) {
    const char *digits = "0123456789abcdef";
    return std::string{digits[v >> 4], digits[v & 15]};
  }
  char advance() {
    char c = text_[pos_++];
    if (c == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    return c;
  }
  void skipSpaceAndComments() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        advance();
      } else if (c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '/') {
        while (pos_ < text_.size() && text_[pos_] != '\n')
          advance();
      } else {
        break;
      }
    }
  }
  Token lexString(Token &t) {
    advance();
    t.kind = Tok::String;
    while (true) {
      if (pos_ >= text_.size() || text_[pos_] == '\n')
        fail(t, "unterminated string");
      char c = advance();
      if (c == '"')
        return t;
      if (c == '\\') {
        if (pos_ >= text_.size())
          fail(t, "unterminated string");
        char e = advance();
        if (e == 'n')
          t.text += '\n';
        else if (e == '"' || e == '\\')
          t.text += e;
        else
          fail(t, std::string("unknown escape '\\") + e + "' in string");
        continue;
      }
      t.text += c;
    }
  }
  Token lexNumber(Token &t) {
    if (text_[pos_] == '-' || text_[pos_] == '+')
      t.text += advance();
    if (text_.compare(pos_, 3, "inf") == 0 || text_.compare(pos_, 3, "nan") == 0) {
      for (int i = 0; i < 3; ++i)
        t.text += advance();
      t.kind = Tok::Float;
      return t;
    }
    bool isFloatText = false;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c >= '0' && c <= '9') {
        t.text += advance();
      } else if (c == '.' || c == 'e' || c == 'E') {
        isFloatText = true;
        t.text += advance();
        if ((c == 'e' || c == 'E') && pos_ < text_.size() &&
            (text_[pos_] == '-' || text_[pos_] == '+'))
          t.text += advance();
      } else {
        break;
      }
    }
    t.kind = isFloatText ? Tok::Float : Tok::Int;
    if (t.text == "-" || t.text == "+")
      fail(t, "expected a number after '" + t.text + "'");
    return t;
  }

  const std::string &text_;
  std::string file_;
  size_t pos_ = 0;
  int line_;
  int col_ = 1;
};

class Parser {
public:
  Parser(const std::string &text, std::string file, int firstLine)
      : lexer_(text, file, firstLine), file_(std::move(file)) {
    tok_ = lexer_.next();
  }

  Module parseModule() {
    Module module;
    while (tok_.kind != Tok::End)
      module.graphs.push_back(parseGraph());
    if (module.graphs.empty())
      lexer_.fail(tok_, "expected 'graph', the file holds no graph");
    return module;
  }

private:
  Location here() const { return Location{file_, tok_.line, tok_.col}; }
  [[noreturn]] void fail(const std::string &message) { lexer_.fail(tok_, message); }
  Token take() {
    Token t = tok_;
    tok_ = lexer_.next();
    return t;
  }
  Token expect(Tok kind, const std::string &what) {
    if (tok_.kind != kind)
      fail("expected " + what + ", got " + describe(tok_));
    return take();
  }
  bool accept(Tok kind) {
    if (tok_.kind != kind)
      return false;
    take();
    return true;
  }
  bool atKeyword(const char *word) const { return tok_.kind == Tok::Ident && tok_.text == word; }
  static std::string describe(const Token &t) {
    switch (t.kind) {
    case Tok::Ident: return "'" + t.text + "'";
    case Tok::Percent: return "'%" + t.text + "'";
    case Tok::At: return "'@" + t.text + "'";
    case Tok::Int: case Tok::Float: return "'" + t.text + "'";
    case Tok::String: return "a string";
    default: return tokName(t.kind);
    }
  }

  double parseFloatToken(const Token &t) {
    errno = 0;
    char *end = nullptr;
    double v = std::strtod(t.text.c_str(), &end);
    if (end != t.text.c_str() + t.text.size())
      lexer_.fail(t, "malformed number '" + t.text + "'");
    if (errno == ERANGE && std::isinf(v))
      lexer_.fail(t, "number " + t.text + " is out of range");
    return v;
  }

  int64_t parseInt() {
    Token t = expect(Tok::Int, "an integer");
    errno = 0;
    char *end = nullptr;
    long long v = std::strtoll(t.text.c_str(), &end, 10);
    if (errno == ERANGE)
      lexer_.fail(t, "integer " + t.text + " is out of range");
    return v;
  }

  TensorType parseType() {
    Token dt = expect(Tok::Ident, "a type such as f32[4,8]");
    std::optional<DType> dtype = parseDType(dt.text);
    if (!dtype)
      lexer_.fail(dt, "unknown dtype '" + dt.text + "' (expected f32, f64, bf16, f16, i32, i64 or i1)");
    expect(Tok::LBracket, "'[' after the dtype");
    std::vector<int64_t> dims;
    if (tok_.kind != Tok::RBracket) {
      do {
        Token at = tok_;
        int64_t d = parseInt();
        if (d < 0)
          lexer_.fail(at, "dimension " + std::to_string(d) + " is negative");
        dims.push_back(d);
      } while (accept(Tok::Comma));
    }
    Token close = expect(Tok::RBracket, "',' or ']' in the shape");
    if (checkedNumElements(dims) < 0)
      lexer_.fail(dt, "type " + std::string(dtypeName(*dtype)) + Shape(dims).toString() +
                          " has too many elements");
    return TensorType{*dtype, Shape(dims)};
  }

  Attribute parseAttrValue() {
    Token t = tok_;
    switch (t.kind) {
    case Tok::Int: return Attribute(parseInt());
    case Tok::Float: take(); return Attribute(parseFloatToken(t));
    case Tok::String: take(); return Attribute(t.text);
    case Tok::Ident:
      take();
      if (t.text == "true" || t.text == "false")
        return Attribute(t.text == "true");
      if (t.text == "inf" || t.text == "nan")
        return Attribute(std::strtod(t.text.c_str(), nullptr));
      if (std::optional<DType> dt = parseDType(t.text))
        return Attribute(*dt);
      if (t.text == "arena" && tok_.kind == Tok::LBracket)
        return parseBufferSlice("arena");
      lexer_.fail(t, "unknown attribute value '" + t.text + "'");
    case Tok::Percent:
      take();
      if (tok_.kind != Tok::LBracket)
        fail("expected '[begin:end]' after '%" + t.text + "' in a buffer slice");
      return parseBufferSlice("%" + t.text);
    case Tok::LBracket: {
      take();
      Attribute::IntList ints;
      Attribute::FloatList floats;
      bool anyFloat = false;
      if (tok_.kind == Tok::Percent || atKeyword("arena")) // one buffer slice per result
        return parseBufferList();
      if (tok_.kind != Tok::RBracket) {
        do {
          Token item = tok_;
          if (item.kind == Tok::Int) {
            int64_t v = parseInt();
            ints.push_back(v);
            floats.push_back(double(v));
          } else if (item.kind == Tok::Float ||
                     (item.kind == Tok::Ident && (item.text == "inf" || item.text == "nan"))) {
            take();
            anyFloat = true;
            floats.push_back(parseFloatToken(item));
          } else {
            fail("expected a number in the list, got " + describe(item));
          }
        } while (accept(Tok::Comma));
      }
      expect(Tok::RBracket, "',' or ']' in the list");
      return anyFloat ? Attribute(floats) : Attribute(ints);
    }
    default:
      fail("expected an attribute value, got " + describe(t));
    }
  }

  /// `arena[0:64], %w[0:32]]` after the `[`: the slices of a multi-output node.
  Attribute parseBufferList() {
    Attribute::BufferList slices;
    do {
      Token buffer = tok_;
      if (buffer.kind == Tok::Percent) {
        take();
        slices.push_back(parseBufferSlice("%" + buffer.text).asBufferSlice());
      } else if (atKeyword("arena")) {
        take();
        slices.push_back(parseBufferSlice("arena").asBufferSlice());
      } else {
        fail("expected a buffer slice in the list, got " + describe(buffer));
      }
    } while (accept(Tok::Comma));
    expect(Tok::RBracket, "',' or ']' in the list of buffer slices");
    return Attribute(std::move(slices));
  }

  /// `[begin:end]` after `arena` or `%arg`.
  Attribute parseBufferSlice(std::string buffer) {
    Token open = expect(Tok::LBracket, "'['");
    int64_t begin = parseInt();
    expect(Tok::Colon, "':' between the slice's begin and end");
    int64_t end = parseInt();
    expect(Tok::RBracket, "']' after the slice");
    if (begin < 0 || end < begin)
      lexer_.fail(open, "buffer slice [" + std::to_string(begin) + ":" + std::to_string(end) +
                            "] must have 0 <= begin <= end");
    return Attribute(BufferSlice{std::move(buffer), begin, end});
  }

  AttrMap parseAttrDict() {
    AttrMap attrs;
    expect(Tok::LBrace, "'{'");
    if (accept(Tok::RBrace))
      return attrs;
    do {
      Token name = expect(Tok::Ident, "an attribute name");
      if (attrs.find(name.text))
        lexer_.fail(name, "attribute '" + name.text + "' is given twice");
      expect(Tok::Equal, "'=' after attribute '" + name.text + "'");
      attrs.set(name.text, parseAttrValue());
    } while (accept(Tok::Comma));
    expect(Tok::RBrace, "',' or '}' after the attribute");
    return attrs;
  }

  Value *lookup(const Token &t) {
    auto it = values_.find(t.text);
    if (it == values_.end() && values_.count(t.text + "#0"))
      lexer_.fail(t, "'%" + t.text + "' has several results: use '%" + t.text + "#0', '%" +
                         t.text + "#1', ...");
    if (it == values_.end())
      lexer_.fail(t, "use of undefined value '%" + t.text + "'");
    return it->second;
  }

  void define(const Token &t, Value *v) {
    if (!values_.emplace(t.text, v).second)
      lexer_.fail(t, "value '%" + t.text + "' is defined twice");
  }

  std::unique_ptr<Graph> parseGraph() {
    values_.clear();
    if (!atKeyword("graph"))
      fail("expected 'graph', got " + describe(tok_));
    take();
    Location graphLoc = here();
    Token name = expect(Tok::At, "the graph name '@name'");
    auto graph = std::make_unique<Graph>(name.text, graphLoc);
    expect(Tok::LParen, "'(' after the graph name");
    if (tok_.kind != Tok::RParen) {
      do {
        Location argLoc = here();
        Token argName = expect(Tok::Percent, "an argument '%name'");
        expect(Tok::Colon, "':' after the argument name");
        TensorType type = parseType();
        Token role = expect(Tok::Ident, "the argument role (input, param or state)");
        ArgRole argRole;
        if (role.text == "input")
          argRole = ArgRole::Input;
        else if (role.text == "param")
          argRole = ArgRole::Param;
        else if (role.text == "state")
          argRole = ArgRole::State;
        else
          lexer_.fail(role, "unknown argument role '" + role.text +
                                "' (expected input, param or state)");
        AttrMap attrs;
        if (tok_.kind == Tok::LBrace)
          attrs = parseAttrDict();
        Argument *arg = graph->addArgument(argName.text, type, argRole, attrs, argLoc);
        define(argName, &arg->value);
      } while (accept(Tok::Comma));
    }
    expect(Tok::RParen, "',' or ')' after the argument");
    expect(Tok::Arrow, "'->' and the result types");
    expect(Tok::LParen, "'(' before the result types");
    std::vector<std::pair<std::string, TensorType>> resultTypes;
    if (tok_.kind != Tok::RParen) {
      do {
        std::string resultName;
        if (tok_.kind == Tok::Ident && !parseDType(tok_.text)) {
          resultName = take().text;
          expect(Tok::Colon, "':' after the result name");
        }
        resultTypes.emplace_back(resultName, parseType());
      } while (accept(Tok::Comma));
    }
    expect(Tok::RParen, "',' or ')' after the result type");
    expect(Tok::LBrace, "'{' to open the graph body");

    while (true) {
      if (tok_.kind == Tok::Percent) {
        parseNode(*graph);
      } else if (atKeyword("update")) {
        Location loc = here();
        take();
        Token target = expect(Tok::Percent, "the updated argument '%name'");
        Value *targetValue = lookup(target);
        if (!targetValue->arg)
          lexer_.fail(target, "update target '%" + target.text + "' is not a graph argument");
        expect(Tok::Comma, "',' between the update target and value");
        Token source = expect(Tok::Percent, "the new value '%name'");
        graph->addUpdate(targetValue->arg, lookup(source), loc);
      } else if (atKeyword("return")) {
        Token ret = take();
        std::vector<Token> operands;
        if (tok_.kind == Tok::Percent) {
          do
            operands.push_back(expect(Tok::Percent, "a returned '%value'"));
          while (accept(Tok::Comma));
        }
        if (operands.size() != resultTypes.size())
          lexer_.fail(ret, "return has " + std::to_string(operands.size()) +
                               " values but @" + graph->name() + " declares " +
                               std::to_string(resultTypes.size()) + " results");
        for (size_t i = 0; i < operands.size(); ++i) {
          Value *v = lookup(operands[i]);
          if (v->type != resultTypes[i].second)
            lexer_.fail(operands[i], "returned value '%" + operands[i].text + "' has type " +
                                         v->type.toString() + " but result " + std::to_string(i) +
                                         " is declared " + resultTypes[i].second.toString());
          graph->addResult(v, resultTypes[i].first);
        }
        expect(Tok::RBrace, "'}' after return");
        return graph;
      } else {
        fail("expected a '%name = op' statement, 'update' or 'return', got " + describe(tok_));
      }
    }
  }

  void parseNode(Graph &graph) {
    Token name = take();
    if (name.text.find('#') != std::string::npos)
      lexer_.fail(name, "'%" + name.text + "' names a result; define the node as '%" +
                            name.text.substr(0, name.text.find('#')) + ":N'");
    int64_t declaredResults = 0; // `%3:2 = ...`: a node with two results, %3#0 and %3#1
    if (accept(Tok::Colon)) {
      Token count = tok_;
      declaredResults = parseInt();
      if (declaredResults < 2)
        lexer_.fail(count, "a node written '%" + name.text + ":N' needs N >= 2 results, got " +
                               std::to_string(declaredResults));
    }
    expect(Tok::Equal, "'=' after '%" + name.text + "'");
    Location loc = here();
    Token op = expect(Tok::Ident, "an op name");
    std::optional<OpKind> kind = parseOpName(op.text);
    if (!kind)
      lexer_.fail(op, "unknown op '" + op.text + "'");
    std::vector<Value *> operands;
    if (tok_.kind == Tok::Percent) {
      do
        operands.push_back(lookup(expect(Tok::Percent, "an operand '%value'")));
      while (accept(Tok::Comma));
    }
    AttrMap attrs;
    if (tok_.kind == Tok::LBrace)
      attrs = parseAttrDict();
    Token colon = expect(Tok::Colon, "':' and the result type");
    std::vector<TensorType> types = {parseType()};
    while (accept(Tok::Comma))
      types.push_back(parseType());
    if (types.size() != size_t(std::max<int64_t>(declaredResults, 1)))
      lexer_.fail(colon, "'%" + name.text + "' declares " +
                             std::to_string(std::max<int64_t>(declaredResults, 1)) + " result" +
                             (declaredResults > 1 ? "s" : "") + " but " +
                             std::to_string(types.size()) +
                             (types.size() == 1 ? " type is written" : " types are written"));
    std::unique_ptr<Graph> body;
    if (tok_.kind == Tok::LBrace) {
      if (*kind != OpKind::Fusion)
        fail("only a fusion has a body; " + op.text + " does not");
      // The verifier rejects this too, but only after parsing, which recurses
      // into each body: a deep nesting would overflow the stack first.
      if (inRegion_)
        lexer_.fail(op, "fusions do not nest");
      body = parseRegion(graph, operands, loc);
    }
    Node *node = graph.addNode(*kind, std::move(operands), std::move(attrs), types, loc);
    if (body)
      node->setBody(std::move(body));
    if (node->numResults() == 1) {
      define(name, node->result());
      return;
    }
    for (size_t r = 0; r < node->numResults(); ++r) {
      Token result = name;
      result.text += resultSuffix(*node->result(r));
      define(result, node->result(r));
    }
  }

  /// `{ nodes... yield %v }`: a fusion's body, with its own names: %arg0..
  /// are the operands' values inside.
  std::unique_ptr<Graph> parseRegion(const Graph &outer, const std::vector<Value *> &operands,
                                     const Location &loc) {
    expect(Tok::LBrace, "'{'");
    inRegion_ = true;
    std::unordered_map<std::string, Value *> saved = std::move(values_);
    values_.clear();
    auto body = std::make_unique<Graph>(outer.name() + ".fusion", loc);
    for (size_t i = 0; i < operands.size(); ++i) {
      Argument *arg = body->addArgument("arg" + std::to_string(i), operands[i]->type,
                                        ArgRole::Input, {}, loc);
      values_["arg" + std::to_string(i)] = &arg->value;
    }
    while (tok_.kind == Tok::Percent)
      parseNode(*body);
    if (!atKeyword("yield"))
      fail("expected a '%name = op' statement or 'yield' in the fusion body, got " + describe(tok_));
    take();
    do
      body->addResult(lookup(expect(Tok::Percent, "a yielded '%value'")));
    while (accept(Tok::Comma));
    expect(Tok::RBrace, "',' or '}' after the yielded value");
    values_ = std::move(saved);
    inRegion_ = false;
    return body;
  }

  Lexer lexer_;
  std::string file_;
  Token tok_;
  std::unordered_map<std::string, Value *> values_;
  bool inRegion_ = false; // parsing a fusion body
};

} // namespace

Module parseModule(const std::string &text, const std::string &fileName, int firstLine) {
  Module module = Parser(text, fileName, firstLine).parseModule();
  verifyModule(module);
  return module;
}

std::vector<InputChunk> splitInputFile(const std::string &text) {
  std::vector<InputChunk> chunks;
  InputChunk current{"", 1};
  int line = 1;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string lineText = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? text.size() : end + 1;
    size_t first = lineText.find_first_not_of(" \t");
    if (first != std::string::npos && lineText.compare(first, 8, "// -----") == 0) {
      chunks.push_back(std::move(current));
      current = InputChunk{"", line + 1};
    } else {
      current.text += lineText + "\n";
    }
    ++line;
  }
  chunks.push_back(std::move(current));
  return chunks;
}

} // namespace kiln
