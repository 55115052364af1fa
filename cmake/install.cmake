# Runs at `cmake --install` time (make install): writes the installed
# configuration and systemd unit with the paths of this prefix. Paths follow
# the GNU rule: prefix /usr puts configuration in /etc and data in /var,
# any other prefix P in P/etc and P/var. DESTDIR is honoured.
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(confdir "/etc/livecount")
  set(statedir "/var/lib/livecount")
else()
  set(confdir "${prefix}/etc/livecount")
  set(statedir "${prefix}/var/lib/livecount")
endif()
set(bindir "${prefix}/bin")
set(webdir "${prefix}/share/livecount/web")
set(dest "$ENV{DESTDIR}")

file(READ "${LC_SOURCE_DIR}/conf/livecount.conf" conf)
string(REGEX REPLACE "\ndb = [^\n]*" "\ndb = ${statedir}/livecount.db" conf "${conf}")
string(REGEX REPLACE "\nweb_root = [^\n]*" "\nweb_root = ${webdir}" conf "${conf}")
if(EXISTS "${dest}${confdir}/livecount.conf")
  # Never overwrite an operator's configuration.
  file(WRITE "${dest}${confdir}/livecount.conf.new" "${conf}")
  message(STATUS "Kept: ${dest}${confdir}/livecount.conf (new one: livecount.conf.new)")
else()
  file(WRITE "${dest}${confdir}/livecount.conf" "${conf}")
  message(STATUS "Installing: ${dest}${confdir}/livecount.conf")
endif()

file(READ "${LC_SOURCE_DIR}/conf/livecount.service.in" unit)
string(REPLACE "@BINDIR@" "${bindir}" unit "${unit}")
string(REPLACE "@CONFDIR@" "${confdir}" unit "${unit}")
string(REPLACE "@STATEDIR@" "${statedir}" unit "${unit}")
file(WRITE "${dest}${prefix}/lib/systemd/system/livecount.service" "${unit}")
message(STATUS "Installing: ${dest}${prefix}/lib/systemd/system/livecount.service")
file(MAKE_DIRECTORY "${dest}${statedir}")
