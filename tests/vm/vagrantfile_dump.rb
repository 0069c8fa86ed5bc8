# Loads a Vagrantfile with a recording stand-in for Vagrant's config DSL and prints what it set as
# JSON (tests/vm/test_vagrantfile.py). Real validation is `vagrant validate`; this shows the values.
#
#   ruby vagrantfile_dump.rb VAGRANTFILE [VAGRANT ARGS...]
# DUMP_SYSNAME / DUMP_MACHINE stand in for the host's `uname` (the Vagrantfile picks the box per
# architecture), DUMP_VAGRANT_VERSION for Vagrant's version; the remaining arguments are the
# Vagrant command line the Vagrantfile sees in ARGV.
require "etc"
require "json"

class Recorder
  attr_reader :data
  def initialize; @data = {}; end
  def network(type, **opts) (@data["networks"] ||= []) << opts.merge("type" => type.to_s); end
  def synced_folder(src, dst, **opts) (@data["synced_folders"] ||= []) << opts.merge("src" => src, "dst" => dst); end
  def provision(name, **opts) (@data["provisioners"] ||= []) << opts.merge("name" => name.to_s); end
  def input(**opts) (@data["inputs"] ||= []) << opts; end
  # A provider block gets its own recorder and an `override` recorder (Vagrant merges the override
  # into the machine's config only when that provider is used).
  def provider(name)
    rec = (@data["providers"] ||= {})[name.to_s] ||= Recorder.new
    override = (rec.data["override"] ||= Recorder.new)
    yield rec, override if block_given?
  end
  def method_missing(name, *args)
    key = name.to_s
    if key.end_with?("=") then @data[key.chomp("=")] = args.first
    else @data[key] ||= Recorder.new
    end
  end
  def respond_to_missing?(*) = true
  def to_json(*a) = @data.to_json(*a)
end

if ENV["DUMP_MACHINE"]
  module Etc
    def self.uname = { sysname: ENV.fetch("DUMP_SYSNAME", "Linux"), machine: ENV["DUMP_MACHINE"] }
  end
end

module Vagrant
  VERSION = ENV.fetch("DUMP_VAGRANT_VERSION", "2.3.4")
  @root = Recorder.new
  def self.configure(_version) = yield(@root)
  def self.root = @root
end

vagrantfile = ARGV.shift
Dir.chdir(File.dirname(vagrantfile)) { load vagrantfile }
puts JSON.generate(Vagrant.root)
