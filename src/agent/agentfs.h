/* Files of the agent's state directory, for its Lua: exactly the operations the agent needs
 * (the sandbox has no io library). */
#pragma once

#include <lua.h>
#include <stddef.h>

/* Pushes the `core.fs` table:
 *   fs.mkdir_p(path)              -> true | nil, err   (missing parents too, mode 0700)
 *   fs.remove_tree(path)          -> true | nil, err   (a missing path is fine)
 *   fs.read(path)                 -> text | nil, err, "missing" when it does not exist
 *   fs.write_atomic(path, text [, durable])
 *                                 -> true | nil, err   (mode 0600: temporary file, fsync,
 *                                                       rename, fsync of the directory;
 *                                                       durable = false skips both fsyncs:
 *                                                       still atomic for a process crash,
 *                                                       not waited for on the disk)
 *   fs.append(path, text)         -> true | nil, err   (creates it, mode 0600; not waited for
 *                                                       on the disk; one that fails leaves
 *                                                       nothing of itself in the file)
 *   fs.remove(path)               -> true | nil, err   (a missing file is fine)
 *   fs.remove_in_pool(path)       -> true | nil, err   (remove_tree of a file or a tree, in the
 *                                                       thread pool while the calling task
 *                                                       waits: freeing blocks can wait for the
 *                                                       device)
 *   fs.list(dir)                  -> { names, sorted } | nil, err
 *   fs.exists(path)               -> boolean
 *   fs.journal(path)              -> j | nil, err      (opens, creating it with mode 0600, an
 *                                                       append-only file shared by many writers)
 *     j:write(text)               -> true | nil, err   (appended on the loop, in call order, not
 *                                                       waited for; one that fails leaves nothing)
 *     j:sync()                    -> true | nil, err   (waits, in the thread pool, for an
 *                                                       fdatasync that covers every write made
 *                                                       before the call; syncs asked for while
 *                                                       one is in flight share the next one)
 *     j:rewrite(text [, wait])    -> true | false | nil, err
 *                                                      (replaces the file with text plus what is
 *                                                       written until the new file is in place:
 *                                                       temporary file synced in the pool, then
 *                                                       renamed; false: a rewrite is in flight
 *                                                       already; wait: the task waits until the
 *                                                       new file and its name are on the disk)
 *     j:empty()                   -> true | nil, err   (empties the file in place, in the
 *                                                       pool, of everything written before the
 *                                                       call, a rewrite in flight included;
 *                                                       writes meanwhile follow)
 *     j:size()                    -> bytes written and not rewritten away
 *     j:syncs()                   -> fdatasyncs done so far (for tests)
 *     j:close()                   (also on collection; a job in flight finishes first)
 * Paths are used as given; misuse (a non-string) raises. */
void hg_agentfs_push(lua_State *L);
/* Replaces path (mode 0600) with data through a temporary file and a rename; 0 or an errno.
 * Durable: the file and the rename are on the disk when it returns (fsync of both). Without,
 * the file is replaced as atomically (a crash of the process leaves the old or the new text)
 * but not waited for: after a power loss it may be missing, or empty where there was none. */
int hg_agentfs_write_file(const char *path, const char *data, size_t len, int durable);
/* mkdir -p with mode 0700 for what it creates; 0 or -1 with errno set. path is not changed. */
int hg_agentfs_mkdir_p(const char *path);
