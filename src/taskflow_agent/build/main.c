/* main() of the static taskflow-agent: CPython (linked from libpython3.11.a) running
 * taskflow_agent.cli.main from the zip appended to this very file.
 *
 * - Isolated configuration: the step's PYTHON* variables, site, user site, locale coercion
 *   (which would set LC_CTYPE in the environment the step inherits) and Python's own
 *   signal handlers are all off; UTF-8 mode decodes argv with surrogateescape, so the step
 *   gets its argv back byte for byte.
 * - Our own builtin module table (this file's _PyImport_Inittab replaces libpython's
 *   config.o): the core modules the agent needs plus _taskflow_native; nothing that would
 *   need zlib, expat or another library, so the binary depends on nothing but the kernel.
 * - The executable's path comes from argv[0] (a path with '/' as is, else searched in PATH,
 *   as the shell that started us did): no /proc needed. It is sys.executable and the only
 *   entry of sys.path (zipimport reads the appended zip).
 * - It exits with os._exit after flushing stdio: the agent has closed every file itself,
 *   and tearing the interpreter down would add 1-2 ms to every step for nothing. (An
 *   unexpected exception still goes through Py_RunMain: traceback, exit 1.)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern PyObject *PyInit_posix(void);
extern PyObject *PyInit_errno(void);
extern PyObject *PyInit_fcntl(void);
extern PyObject *PyInit__signal(void);
extern PyObject *PyInit__io(void);
extern PyObject *PyInit__codecs(void);
extern PyObject *PyInit__weakref(void);
extern PyObject *PyInit__abc(void);
extern PyObject *PyInit__functools(void);
extern PyObject *PyInit__collections(void);
extern PyObject *PyInit_itertools(void);
extern PyObject *PyInit__operator(void);
extern PyObject *PyInit__sre(void);
extern PyObject *PyInit__stat(void);
extern PyObject *PyInit__thread(void);
extern PyObject *PyInit_time(void);
extern PyObject *PyInit__locale(void);
extern PyObject *PyInit_atexit(void);
extern PyObject *PyInit_faulthandler(void);
extern PyObject *PyInit__tracemalloc(void);
extern PyObject *PyInit__string(void);
extern PyObject *PyInit_gc(void);
extern PyObject *PyMarshal_Init(void);
extern PyObject *PyInit__imp(void);
extern PyObject *_PyWarnings_Init(void);
extern PyObject *PyInit__taskflow_native(void);

struct _inittab _PyImport_Inittab[] = {
    {"posix", PyInit_posix},
    {"errno", PyInit_errno},
    {"fcntl", PyInit_fcntl},
    {"_signal", PyInit__signal},
    {"_io", PyInit__io},
    {"_codecs", PyInit__codecs},
    {"_weakref", PyInit__weakref},
    {"_abc", PyInit__abc},
    {"_functools", PyInit__functools},
    {"_collections", PyInit__collections},
    {"itertools", PyInit_itertools},
    {"_operator", PyInit__operator},
    {"_sre", PyInit__sre},
    {"_stat", PyInit__stat},
    {"_thread", PyInit__thread},
    {"time", PyInit_time},
    {"_locale", PyInit__locale},
    {"atexit", PyInit_atexit},
    {"faulthandler", PyInit_faulthandler},
    {"_tracemalloc", PyInit__tracemalloc},
    {"_string", PyInit__string},
    {"gc", PyInit_gc},
    {"marshal", PyMarshal_Init},
    {"_imp", PyInit__imp},
    {"_warnings", _PyWarnings_Init},
    {"builtins", NULL},
    {"sys", NULL},
    {"_taskflow_native", PyInit__taskflow_native},
    {0, 0},
};

static void
die(const char *what)
{
    fprintf(stderr, "taskflow-agent: %s\n", what);
    exit(1);
}

/* The file argv0 names: itself when it has a '/', else the first executable regular file
 * of that name in PATH (execvp's default PATH when unset). Absolute when possible. */
static void
find_self(const char *argv0, char *out, size_t size)
{
    if (strchr(argv0, '/') != NULL) {
        if (argv0[0] == '/' || getcwd(out, size) == NULL) {
            snprintf(out, size, "%s", argv0);
        } else {
            size_t n = strlen(out);
            snprintf(out + n, size - n, "/%s", argv0);
        }
        return;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/bin:/usr/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        snprintf(out, size, "%.*s/%s", (int)len, len ? path : ".", argv0);
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return;
        if (end == NULL)
            break;
        path = end + 1;
    }
    snprintf(out, size, "%s", argv0);
}

static void
check(PyStatus status, PyConfig *config)
{
    if (PyStatus_Exception(status)) {
        if (config != NULL)
            PyConfig_Clear(config);
        Py_ExitStatusException(status);
    }
}

int
main(int argc, char **argv)
{
    static char self[PATH_MAX];
    find_self(argc > 0 ? argv[0] : "taskflow-agent", self, sizeof self);

    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;
    pre.coerce_c_locale = 0;
    pre.configure_locale = 0;
    check(Py_PreInitialize(&pre), NULL);

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.write_bytecode = 0;
    config.install_signal_handlers = 0;
    config.pathconfig_warnings = 0;
    config.parse_argv = 0;
    config.user_site_directory = 0;
    config.safe_path = 1;
    config.optimization_level = 2;
    check(PyConfig_SetBytesString(&config, &config.program_name, self), &config);
    check(PyConfig_SetBytesString(&config, &config.executable, self), &config);
    check(PyConfig_SetBytesString(&config, &config.home, "/"), &config);
    check(PyConfig_SetBytesArgv(&config, argc, argv), &config);
    wchar_t *wself = Py_DecodeLocale(self, NULL);
    if (wself == NULL)
        die("cannot decode the executable's path");
    config.module_search_paths_set = 1;
    check(PyWideStringList_Append(&config.module_search_paths, wself), &config);
    PyMem_RawFree(wself);
    check(PyConfig_SetString(&config, &config.run_command,
                             L"import os, sys\n"
                             L"from taskflow_agent.cli import main\n"
                             L"code = main(sys.argv[1:])\n"
                             L"sys.stdout.flush()\n"
                             L"sys.stderr.flush()\n"
                             L"os._exit(code)\n"),
          &config);
    check(Py_InitializeFromConfig(&config), &config);
    PyConfig_Clear(&config);
    return Py_RunMain();
}
