package dev.sfllava.core

import com.google.gson.JsonArray
import com.google.gson.JsonElement
import com.google.gson.JsonObject
import com.google.gson.JsonParseException
import com.google.gson.JsonParser
import com.google.gson.JsonPrimitive

/**
 * Typed access to a Gson tree with errors that name the field path ("manifest.video.frames: missing"),
 * so a bundle from another schema fails with one clear line instead of a NullPointerException.
 */
internal class JsonFields(private val obj: JsonObject, private val path: String) {
    companion object {
        fun parse(json: String, what: String): JsonFields {
            val root =
                try {
                    JsonParser.parseString(json)
                } catch (e: JsonParseException) {
                    throw BundleException("$what is not valid JSON: ${e.message?.lineSequence()?.firstOrNull()}")
                }
            if (!root.isJsonObject) throw BundleException("$what must be a JSON object")
            return JsonFields(root.asJsonObject, what)
        }
    }

    private fun fail(key: String, why: String): Nothing = throw BundleException("$path.$key: $why")

    private fun get(key: String): JsonElement = obj.get(key) ?: fail(key, "missing")

    fun has(key: String): Boolean = obj.has(key) && !obj.get(key).isJsonNull

    fun obj(key: String): JsonFields {
        val e = get(key)
        if (!e.isJsonObject) fail(key, "expected an object")
        return JsonFields(e.asJsonObject, "$path.$key")
    }

    fun string(key: String): String {
        val e = get(key)
        if (!e.isJsonPrimitive || !(e as JsonPrimitive).isString) fail(key, "expected a string")
        return e.asString
    }

    fun stringOrNull(key: String): String? = if (get(key).isJsonNull) null else string(key)

    fun int(key: String): Int {
        val e = get(key)
        if (!e.isJsonPrimitive || !(e as JsonPrimitive).isNumber) fail(key, "expected an integer")
        val d = e.asDouble
        if (d != Math.floor(d) || d > Int.MAX_VALUE || d < Int.MIN_VALUE) fail(key, "expected an integer, got $d")
        return d.toInt()
    }

    fun intOrNull(key: String): Int? = if (get(key).isJsonNull) null else int(key)

    fun long(key: String): Long {
        val e = get(key)
        if (!e.isJsonPrimitive || !(e as JsonPrimitive).isNumber) fail(key, "expected an integer")
        return e.asLong
    }

    fun double(key: String): Double {
        val e = get(key)
        if (!e.isJsonPrimitive || !(e as JsonPrimitive).isNumber) fail(key, "expected a number")
        return e.asDouble
    }

    private fun array(key: String): JsonArray {
        val e = get(key)
        if (!e.isJsonArray) fail(key, "expected an array")
        return e.asJsonArray
    }

    fun ints(key: String): IntArray {
        val a = array(key)
        return IntArray(a.size()) { i ->
            val e = a[i]
            if (!e.isJsonPrimitive || !(e as JsonPrimitive).isNumber) fail("$key[$i]", "expected an integer")
            e.asInt
        }
    }

    fun strings(key: String): List<String> = array(key).mapIndexed { i, e ->
        if (!e.isJsonPrimitive || !(e as JsonPrimitive).isString) fail("$key[$i]", "expected a string")
        e.asString
    }

    fun objects(key: String): List<JsonFields> = array(key).mapIndexed { i, e ->
        if (!e.isJsonObject) fail("$key[$i]", "expected an object")
        JsonFields(e.asJsonObject, "$path.$key[$i]")
    }

    fun bool(key: String): Boolean {
        val e = get(key)
        if (!e.isJsonPrimitive || !(e as JsonPrimitive).isBoolean) fail(key, "expected true or false")
        return e.asBoolean
    }

    /** An array of numbers and strings, each as text (tensor shapes mix ints and symbolic dims). */
    fun scalarsAsText(key: String): List<String> = array(key).mapIndexed { i, e ->
        if (!e.isJsonPrimitive) fail("$key[$i]", "expected a number or a string")
        val p = e as JsonPrimitive
        if (p.isNumber) p.asLong.toString() else p.asString
    }

    fun keys(): Set<String> = obj.keySet()

    fun requireOneOf(key: String, allowed: Collection<String>): String {
        val v = string(key)
        if (v !in allowed) fail(key, "'$v' is not one of ${allowed.joinToString()}")
        return v
    }
}
