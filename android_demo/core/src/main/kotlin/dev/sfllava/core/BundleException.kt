package dev.sfllava.core

/** A bundle, video or input the app cannot use; [message] is one line a user can act on. */
open class BundleException(message: String) : Exception(message)
