#!/usr/bin/env node
// Launcher kept in git so the workspace bin link exists before the first build.
import "../dist/main.js";
