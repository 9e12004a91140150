# install.cmake: what `cmake --install` (and so the Debian package, debian/rules)
# puts where. With -DCMAKE_INSTALL_PREFIX=/usr (the package):
#   /usr/bin/unsubrelay, /etc/unsubrelay/unsubrelay.yaml, /lib/systemd/system/unsubrelay.service,
#   /usr/share/man/man8/unsubrelay.8, /usr/share/doc/unsubrelay/{README.md,*.md}, docs/monitoring/.
# The state (spool, store, keys, outbox) is always /var/lib/unsubrelay: the unit's StateDirectory=.
include(GNUInstallDirs)

set(UNSUBRELAY_STATEDIR /var/lib/unsubrelay)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(unit_dir_default /lib/systemd/system)  # Debian 12 keeps units out of /usr/lib
else()
  set(unit_dir_default ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)  # /usr/local/lib/systemd/system is searched too
endif()
set(UNSUBRELAY_SYSTEMD_UNITDIR ${unit_dir_default} CACHE PATH "where the systemd unit is installed")
set(UNSUBRELAY_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(UNSUBRELAY_CONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/unsubrelay)

configure_file(${PROJECT_SOURCE_DIR}/systemd/unsubrelay.service.in
               ${PROJECT_BINARY_DIR}/systemd/unsubrelay.service @ONLY)

# The installed configuration is the annotated reference with its relative
# paths (var/...) moved into the state directory, and an explicit keys file
# (made by the package's postinst with `unsubrelay keygen`).
file(READ ${PROJECT_SOURCE_DIR}/conf/unsubrelay.yaml installed_conf)
function(unsubrelay_conf_replace from to)
  string(FIND "${installed_conf}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "cmake/install.cmake: conf/unsubrelay.yaml no longer contains '${from}'")
  endif()
  string(REPLACE "${from}" "${to}" replaced "${installed_conf}")
  set(installed_conf "${replaced}" PARENT_SCOPE)
endfunction()
unsubrelay_conf_replace("directory: var/outbox" "directory: ${UNSUBRELAY_STATEDIR}/outbox")
unsubrelay_conf_replace("path: var/unsubrelay.db" "path: ${UNSUBRELAY_STATEDIR}/unsubrelay.db")
unsubrelay_conf_replace("path: var/spool" "path: ${UNSUBRELAY_STATEDIR}/spool")
string(REGEX REPLACE "\n  # keys_file:[^\n]*"
       "\n  keys_file: ${UNSUBRELAY_STATEDIR}/keys.yaml   # made at install (`unsubrelay keygen -o`); rotation: docs/tokens.md"
       installed_conf "${installed_conf}")
string(FIND "${installed_conf}" "keys_file: ${UNSUBRELAY_STATEDIR}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "cmake/install.cmake: conf/unsubrelay.yaml no longer has a '# keys_file:' line")
endif()
string(PREPEND installed_conf
       "# Installed as ${UNSUBRELAY_CONFDIR}/unsubrelay.yaml (the Debian package's conffile: upgrades\n"
       "# keep your edits), with the state under ${UNSUBRELAY_STATEDIR} (docs/operations.md).\n"
       "# Check an edit with `unsubrelay check-config -c ${UNSUBRELAY_CONFDIR}/unsubrelay.yaml`, then\n"
       "# `systemctl reload unsubrelay` (users file, log level) or `systemctl restart unsubrelay`.\n#\n")
file(WRITE ${PROJECT_BINARY_DIR}/conf/unsubrelay.yaml "${installed_conf}")

install(TARGETS unsubrelay RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_BINARY_DIR}/conf/unsubrelay.yaml DESTINATION ${UNSUBRELAY_CONFDIR})
install(FILES ${PROJECT_BINARY_DIR}/systemd/unsubrelay.service DESTINATION ${UNSUBRELAY_SYSTEMD_UNITDIR})
install(FILES ${PROJECT_SOURCE_DIR}/man/unsubrelay.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
file(GLOB doc_pages ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${doc_pages} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/monitoring DESTINATION ${CMAKE_INSTALL_DOCDIR} OPTIONAL)
