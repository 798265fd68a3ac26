"""Host-side tooling for the phone apps: building and running their portable logic (Kotlin `core`)
on this machine, replaying what they feed the runner, and checking their sources."""
