// Model metadata: a small JSON document stored beside the TorchScript code in the model file.
// torch ships no JSON parser in its public headers, so a minimal one lives here (objects,
// arrays, strings with escapes, numbers, true/false/null): enough for the metadata schema.
#include "symprobe/symprobe.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <locale>
#include <map>
#include <memory>
#include <sstream>

namespace symprobe {
namespace {

struct Json {
    enum Type { Null, Bool, Number, String, Array, Object } type = Null;
    bool boolean = false;
    double number = 0.0;
    std::string string;
    std::vector<Json> array;
    std::map<std::string, Json> object;
};

class Parser {
public:
    Parser(const std::string& text, const std::string& origin) : s_(text), origin_(origin) {}

    Json document() {
        Json value = parse_value(0);
        skip_space();
        if (pos_ != s_.size()) fail("trailing characters after the JSON document");
        return value;
    }

private:
    const std::string& s_;
    const std::string& origin_;
    size_t pos_ = 0;

    [[noreturn]] void fail(const std::string& what) {
        std::ostringstream msg;
        msg << origin_ << ": invalid metadata JSON at character " << pos_ << ": " << what;
        throw Error(Error::InvalidModel, msg.str());
    }
    void skip_space() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' ||
                                    s_[pos_] == '\r')) {
            pos_++;
        }
    }
    bool consume(char c) {
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == c) {
            pos_++;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!consume(c)) fail(std::string("expected '") + c + "'");
    }
    bool literal(const char* word) {
        size_t n = std::char_traits<char>::length(word);
        if (s_.compare(pos_, n, word) == 0) {
            pos_ += n;
            return true;
        }
        return false;
    }

    std::string parse_string() {
        expect('"');
        std::string out;
        while (true) {
            if (pos_ >= s_.size()) fail("unterminated string");
            char c = s_[pos_++];
            if (c == '"') return out;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= s_.size()) fail("unterminated escape");
            char e = s_[pos_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    if (pos_ + 4 > s_.size()) fail("bad \\u escape");
                    unsigned code = 0;
                    for (size_t k = 0; k < 4; ++k) {
                        char h = s_[pos_ + k];
                        int digit = std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                    : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                                    : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                        if (digit < 0) fail("bad \\u escape");
                        code = 16 * code + static_cast<unsigned>(digit);
                    }
                    pos_ += 4;
                    // UTF-8 encode (basic multilingual plane; metadata is ASCII in practice)
                    if (code < 0x80) {
                        out += static_cast<char>(code);
                    } else if (code < 0x800) {
                        out += static_cast<char>(0xC0 | (code >> 6));
                        out += static_cast<char>(0x80 | (code & 0x3F));
                    } else {
                        out += static_cast<char>(0xE0 | (code >> 12));
                        out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
                        out += static_cast<char>(0x80 | (code & 0x3F));
                    }
                    break;
                }
                default: fail("bad escape");
            }
        }
    }

    Json parse_value(int depth) {
        if (depth > 64) fail("nesting too deep");
        skip_space();
        if (pos_ >= s_.size()) fail("unexpected end");
        Json v;
        char c = s_[pos_];
        if (c == '{') {
            pos_++;
            v.type = Json::Object;
            if (consume('}')) return v;
            do {
                skip_space();
                std::string key = parse_string();
                expect(':');
                v.object[key] = parse_value(depth + 1);
            } while (consume(','));
            expect('}');
        } else if (c == '[') {
            pos_++;
            v.type = Json::Array;
            if (consume(']')) return v;
            do {
                v.array.push_back(parse_value(depth + 1));
            } while (consume(','));
            expect(']');
        } else if (c == '"') {
            v.type = Json::String;
            v.string = parse_string();
        } else if (literal("true")) {
            v.type = Json::Bool;
            v.boolean = true;
        } else if (literal("false")) {
            v.type = Json::Bool;
        } else if (literal("null")) {
            v.type = Json::Null;
        } else {
            // locale-independent: a comma-decimal LC_NUMERIC must not change "4.5"
            size_t end = pos_;
            while (end < s_.size() && s_[end] != '\0' &&
                   std::strchr("+-0123456789.eE", s_[end]) != nullptr) {
                end++;
            }
            std::istringstream in(s_.substr(pos_, end - pos_));
            in.imbue(std::locale::classic());
            if (end == pos_ || !(in >> v.number) || !in.eof()) fail("unexpected character");
            v.type = Json::Number;
            pos_ = end;
        }
        return v;
    }
};

const Json& field(const Json& root, const std::string& key, Json::Type type,
                  const std::string& origin) {
    static const char* names[] = {"null", "boolean", "number", "string", "array", "object"};
    auto it = root.object.find(key);
    if (it == root.object.end()) {
        throw Error(Error::InvalidModel, origin + ": metadata is missing the field '" + key + "'");
    }
    if (it->second.type != type) {
        throw Error(Error::InvalidModel, origin + ": metadata field '" + key + "' must be a " +
                                             names[type]);
    }
    return it->second;
}

}  // namespace

int ModelMetadata::depth() const {
    return std::max(1, static_cast<int>(std::ceil(interaction_range / cutoff - 1e-9)));
}

ModelMetadata parse_metadata(const std::string& json, const std::string& origin) {
    Json root = Parser(json, origin).document();
    if (root.type != Json::Object) {
        throw Error(Error::InvalidModel, origin + ": metadata must be a JSON object");
    }
    ModelMetadata meta;
    meta.json = json;
    double version = field(root, "contract_version", Json::Number, origin).number;
    if (version != 1.0) {
        std::ostringstream msg;
        msg << origin << ": model contract version " << version
            << " is not supported by this symprobe (supports 1)";
        throw Error(Error::InvalidModel, msg.str());
    }
    meta.contract_version = 1;
    meta.cutoff = field(root, "cutoff", Json::Number, origin).number;
    if (!(meta.cutoff > 0.0) || !std::isfinite(meta.cutoff)) {
        throw Error(Error::InvalidModel, origin + ": metadata 'cutoff' must be positive (Angstrom)");
    }
    meta.interaction_range = field(root, "interaction_range", Json::Number, origin).number;
    if (!(meta.interaction_range >= meta.cutoff) || !std::isfinite(meta.interaction_range)) {
        throw Error(Error::InvalidModel,
                    origin + ": metadata 'interaction_range' must be >= 'cutoff' (Angstrom)");
    }
    for (const Json& e : field(root, "elements", Json::Array, origin).array) {
        if (e.type != Json::String) {
            throw Error(Error::InvalidModel,
                        origin + ": metadata 'elements' must be a list of chemical symbols");
        }
        try {
            meta.elements.push_back(atomic_number(e.string));
        } catch (const Error& err) {
            throw Error(Error::InvalidModel, origin + ": metadata 'elements': " + err.what());
        }
    }
    if (meta.elements.empty()) {
        throw Error(Error::InvalidModel, origin + ": metadata 'elements' is empty");
    }
    meta.dtype = field(root, "dtype", Json::String, origin).string;
    if (meta.dtype != "float32" && meta.dtype != "float64") {
        throw Error(Error::InvalidModel,
                    origin + ": metadata 'dtype' must be \"float32\" or \"float64\", got \"" +
                        meta.dtype + "\"");
    }
    meta.energy_unit = field(root, "energy_unit", Json::String, origin).string;
    if (meta.energy_unit != "eV") {
        throw Error(Error::InvalidModel, origin + ": metadata 'energy_unit' must be \"eV\", got \"" +
                                             meta.energy_unit + "\"");
    }
    meta.length_unit = field(root, "length_unit", Json::String, origin).string;
    if (meta.length_unit != "A") {
        throw Error(Error::InvalidModel,
                    origin + ": metadata 'length_unit' must be \"A\" (Angstrom), got \"" +
                        meta.length_unit + "\"");
    }
    auto name = root.object.find("name");
    if (name != root.object.end() && name->second.type == Json::String) {
        meta.name = name->second.string;
    }
    // optional: a layered model (methods embed and layer)
    const bool has_layers = root.object.count("layers") > 0, has_features = root.object.count("features") > 0;
    if (has_layers != has_features) {
        throw Error(Error::InvalidModel, origin + ": metadata gives 'layers' without 'features' or the "
                                                  "other way round; a layered model gives both");
    }
    if (has_layers) {
        const double layers = field(root, "layers", Json::Number, origin).number;
        const double features = field(root, "features", Json::Number, origin).number;
        if (!(layers >= 1 && layers <= 1000 && layers == std::floor(layers)) ||
            !(features >= 1 && features <= 1e6 && features == std::floor(features))) {
            throw Error(Error::InvalidModel, origin + ": metadata 'layers' and 'features' must be positive integers");
        }
        meta.layers = static_cast<int>(layers);
        meta.features = static_cast<int>(features);
        if (meta.layers != meta.depth()) {
            std::ostringstream msg;
            msg << origin << ": metadata 'layers' (" << meta.layers << ") must equal interaction_range / cutoff ("
                << meta.interaction_range << " / " << meta.cutoff << " A)";
            throw Error(Error::InvalidModel, msg.str());
        }
    }
    return meta;
}

}  // namespace symprobe
